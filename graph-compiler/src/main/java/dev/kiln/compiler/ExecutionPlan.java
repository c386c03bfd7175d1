package dev.kiln.compiler;

import dev.kiln.graph.MethodRef;
import dev.kiln.graph.Transport;

import java.util.ArrayList;
import java.util.Collections;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Objects;

/**
 * What the compiler made of a graph: one channel per edge that crosses actors, one schedule of
 * READ / COMPUTE / ALLREDUCE / WRITE operations per actor, how the driver feeds the input and reads
 * the outputs, and for GPU plans the device memory, the NCCL communicators, the all-reduces and each
 * rank's NCCL steps. Plain data: printed by {@link #toString()} and {@link #toDot()}, compared in
 * tests, shipped to the processes that host actors.
 *
 * <p>Participants are actor ids; the driver (the thread calling {@code execute}) is
 * {@link #DRIVER}.
 *
 * @param inputArity   number of positional arguments {@code execute} takes (0 when the input is unused)
 * @param maxInflight  executions in flight at most; the slot count of every channel
 * @param nodes        the graph's nodes in topological order
 * @param channels     the channels; channel 0 carries the input from the driver
 * @param schedules    one schedule per actor, in order of first appearance
 * @param outputs      for each output position, the channel and driver reader index it is read from
 * @param multiOutput  whether the graph was built with {@code Graph.outputs} (results are a list)
 * @param devices      the GPUs of the plan's participants, with the device memory the plan holds on each, by host
 *                     then device index (then UUID); empty when no participant has a GPU
 * @param nccl         each NCCL participant's ordered groups of sends, receives and collective steps;
 *                     {@link NcclSchedule#NONE} when the plan has no NCCL channel and no collective
 * @param communicators the NCCL communicators the executor creates, by id: communicator 0 is the point-to-point
 *                     one when some channel uses {@link Transport#NCCL}; then one per distinct member set of the
 *                     collectives (a collective reuses a communicator whose rank set equals its member set)
 * @param collectives  the all-reduces, by id
 */
public record ExecutionPlan(int inputArity, int maxInflight, List<NodeSpec> nodes, List<ChannelSpec> channels,
                            List<ActorSchedule> schedules, List<OutputRead> outputs, boolean multiOutput,
                            List<DeviceMemory> devices, NcclSchedule nccl, List<CommunicatorSpec> communicators,
                            List<CollectiveSpec> collectives) {

    /** The participant id of the driver. */
    public static final int DRIVER = -1;

    /** The id of the channel that carries the input from the driver. */
    public static final int INPUT_CHANNEL = 0;

    /**
     * Creates a {@code ExecutionPlan}.
     *
     * @param inputArity    input arguments
     * @param maxInflight   in-flight bound
     * @param nodes         nodes (copied)
     * @param channels      channels (copied)
     * @param schedules     schedules (copied)
     * @param outputs       outputs (copied)
     * @param multiOutput   list-valued results
     * @param devices       device memory (copied)
     * @param nccl          the NCCL schedule
     * @param communicators communicators (copied)
     * @param collectives   collectives (copied)
     * @throws IllegalArgumentException if a communicator's or collective's id is not its index, or a collective
     *                                  names a missing communicator or one whose ranks are not its members
     */
    public ExecutionPlan {
        nodes = List.copyOf(nodes);
        channels = List.copyOf(channels);
        schedules = List.copyOf(schedules);
        outputs = List.copyOf(outputs);
        devices = List.copyOf(devices);
        Objects.requireNonNull(nccl, "nccl");
        communicators = List.copyOf(communicators);
        collectives = List.copyOf(collectives);
        for (int i = 0; i < communicators.size(); i++) {
            if (communicators.get(i).id() != i) {
                throw new IllegalArgumentException("communicator " + i + " has id " + communicators.get(i).id());
            }
        }
        for (int i = 0; i < collectives.size(); i++) {
            CollectiveSpec c = collectives.get(i);
            if (c.id() != i) {
                throw new IllegalArgumentException("collective " + i + " has id " + c.id());
            }
            if (c.communicator() < 0 || c.communicator() >= communicators.size()) {
                throw new IllegalArgumentException("allreduce#" + i + " uses communicator " + c.communicator()
                        + ", but the plan has " + communicators.size());
            }
            if (!new HashSet<>(communicators.get(c.communicator()).ranks()).equals(new HashSet<>(c.members()))) {
                throw new IllegalArgumentException("allreduce#" + i + " has members " + c.members() + " but comm"
                        + c.communicator() + " has ranks " + communicators.get(c.communicator()).ranks());
            }
        }
    }

    /**
     * A plan without collectives: its communicators are the point-to-point one, whose ranks are {@code nccl}'s, if
     * {@code nccl} has ranks, else none.
     *
     * @param inputArity  input arguments
     * @param maxInflight in-flight bound
     * @param nodes       nodes (copied)
     * @param channels    channels (copied)
     * @param schedules   schedules (copied)
     * @param outputs     outputs (copied)
     * @param multiOutput list-valued results
     * @param devices     device memory (copied)
     * @param nccl        the NCCL schedule, without collective steps
     */
    public ExecutionPlan(int inputArity, int maxInflight, List<NodeSpec> nodes, List<ChannelSpec> channels,
                         List<ActorSchedule> schedules, List<OutputRead> outputs, boolean multiOutput,
                         List<DeviceMemory> devices, NcclSchedule nccl) {
        this(inputArity, maxInflight, nodes, channels, schedules, outputs, multiOutput, devices, nccl,
                nccl.size() == 0 ? List.of() : List.of(new CommunicatorSpec(0, nccl.ranks())), List.of());
    }

    /**
     * A plan without GPUs: no device memory, no NCCL schedule.
     *
     * @param inputArity  input arguments
     * @param maxInflight in-flight bound
     * @param nodes       nodes (copied)
     * @param channels    channels (copied)
     * @param schedules   schedules (copied)
     * @param outputs     outputs (copied)
     * @param multiOutput list-valued results
     */
    public ExecutionPlan(int inputArity, int maxInflight, List<NodeSpec> nodes, List<ChannelSpec> channels,
                         List<ActorSchedule> schedules, List<OutputRead> outputs, boolean multiOutput) {
        this(inputArity, maxInflight, nodes, channels, schedules, outputs, multiOutput, List.of(), NcclSchedule.NONE);
    }

    /**
     * The device memory the plan holds, per GPU ({@link DeviceMemory#heldBytes()}): receive slots of direct GPU
     * edges, the one device buffer per GPU reader of each staged edge, the output buffer of each all-reduce member,
     * and NCCL's own buffers on each device that holds an NCCL rank.
     *
     * @return bytes held by device name ({@code host/gpuN}, followed by {@code [uuid]} where two GPUs of the plan
     *         would otherwise share a name, or one GPU goes by two indices), in the order of {@link #devices()}
     */
    public Map<String, Long> deviceBytes() {
        DeviceNames names = deviceNames();
        Map<String, Long> bytes = new LinkedHashMap<>();
        for (DeviceMemory d : devices) {
            bytes.put(d.host() + "/" + names.gpu(d.host(), d.device(), d.uuid()), d.heldBytes());
        }
        return Collections.unmodifiableMap(bytes);
    }

    private DeviceNames deviceNames() {
        DeviceNames names = new DeviceNames();
        for (DeviceMemory d : devices) {
            names.add(d.host(), d.device(), d.uuid());
        }
        for (ActorSchedule s : schedules) {
            names.add(s.placement());
        }
        return names;
    }

    /**
     * A node of the compiled graph.
     *
     * @param id       index in {@link #nodes()}, in topological order
     * @param label    {@code input}, {@code input[i]}, {@code actor.method}, or {@code allreduce#k[i]} for member i's
     *                 output of collective k
     * @param actor    the actor that computes it, or {@link #DRIVER} for the input
     * @param upstream ids of the nodes it reads, in argument order (for an all-reduce output: its member's input)
     */
    public record NodeSpec(int id, String label, int actor, List<Integer> upstream) {
        /**
         * Creates a {@code NodeSpec}.
         *
         * @param id       id
         * @param label    label
         * @param actor    actor id
         * @param upstream upstream ids (copied)
         */
        public NodeSpec {
            upstream = List.copyOf(upstream);
        }
    }

    /**
     * One channel: one writer, several readers, {@code slots} slots of {@code slotBytes}.
     *
     * @param id        channel id, its index in {@link #channels()}
     * @param node      id of the node whose value it carries; -1 for the input channel of a graph that reads no input
     * @param writer    the writing participant
     * @param readers   the reading participants; a reader's index in this list is its reader index
     * @param slots     number of slots (= maxInflight)
     * @param slotBytes bytes per slot for copied values
     * @param transport the resolved transport
     * @param reason    why that transport was chosen
     */
    public record ChannelSpec(int id, int node, int writer, List<Integer> readers, int slots, long slotBytes,
                              Transport transport, String reason) {
        /**
         * Creates a {@code ChannelSpec}.
         *
         * @param id        id
         * @param node      node id
         * @param writer    writer
         * @param readers   readers (copied)
         * @param slots     slots
         * @param slotBytes slot bytes
         * @param transport transport
         * @param reason    reason
         */
        public ChannelSpec {
            readers = List.copyOf(readers);
        }
    }

    /**
     * The operations one actor runs, in order, for every execution.
     *
     * @param actor     actor id
     * @param name      actor name
     * @param placement where the actor lives
     * @param frameSize number of local value slots the operations use
     * @param ops       the operations
     * @param carrier   the actor whose thread runs these operations: {@code actor} itself when the actor runs on a
     *                  thread of its own, else the first actor of the group of actors of one process that share a
     *                  thread (its own carrier)
     */
    public record ActorSchedule(int actor, String name, Topology.ActorPlacement placement, int frameSize,
                                List<Operation> ops, int carrier) {
        /**
         * Creates a {@code ActorSchedule}.
         *
         * @param actor     actor id
         * @param name      actor name
         * @param placement placement
         * @param frameSize frame size
         * @param ops       operations (copied)
         * @param carrier   the actor whose thread runs them
         */
        public ActorSchedule {
            ops = List.copyOf(ops);
        }

        /**
         * A schedule run on the actor's own thread.
         *
         * @param actor     actor id
         * @param name      actor name
         * @param placement placement
         * @param frameSize frame size
         * @param ops       operations (copied)
         */
        public ActorSchedule(int actor, String name, Topology.ActorPlacement placement, int frameSize,
                             List<Operation> ops) {
            this(actor, name, placement, frameSize, ops, actor);
        }

        /** {@return whether the actor runs on another actor's thread ({@code carrier != actor})} */
        public boolean sharesThread() {
            return carrier != actor;
        }

        /**
         * {@return this schedule on that actor's thread}
         *
         * @param carrier the actor whose thread runs the operations
         */
        public ActorSchedule onThreadOf(int carrier) {
            return new ActorSchedule(actor, name, placement, frameSize, ops, carrier);
        }
    }

    /**
     * Whether an actor may share a thread with other actors of its JVM (run on another's thread, or carry others on
     * its own): it has no GPU (its device is bound to its thread), no all-reduce (a collective blocks its thread), and
     * every channel it reads or writes is {@link Transport#IN_PROCESS} (a thread that waits on another process's
     * channel sleeps in it, while it owes the actors it shares with work).
     *
     * @param schedule the actor's schedule
     * @param channels the plan's channels; an index outside them makes the answer no
     * @return whether it may share
     */
    public static boolean mayShareThread(ActorSchedule schedule, List<ChannelSpec> channels) {
        if (schedule.placement().hasGpu()) {
            return false;
        }
        for (Operation op : schedule.ops()) {
            int channel = switch (op) {
                case Read r -> r.channel();
                case Write w -> w.channel();
                case AllReduce a -> -2;
                case Compute c -> -1;
            };
            if (channel == -2 || channel >= 0 && (channel >= channels.size()
                    || channels.get(channel).transport() != Transport.IN_PROCESS)) {
                return false;
            }
        }
        return true;
    }

    /** One step of an actor's schedule. */
    public sealed interface Operation permits Read, Compute, AllReduce, Write {
    }

    /**
     * Wait for the execution's value in a channel and put it into a local.
     *
     * @param channel channel id
     * @param reader  this actor's reader index in that channel
     * @param local   destination local
     */
    public record Read(int channel, int reader, int local) implements Operation {
    }

    /**
     * Call a method on the actor with arguments from locals, the input or constants, result into a local.
     *
     * @param node   node id
     * @param method the method
     * @param args   where each argument comes from
     * @param local  destination local
     */
    public record Compute(int node, MethodRef method, List<Arg> args, int local) implements Operation {
        /**
         * Creates a {@code Compute}.
         *
         * @param node   node id
         * @param method method
         * @param args   arguments (copied; may hold null constants)
         * @param local  local
         */
        public Compute {
            args = List.copyOf(args);
        }
    }

    /**
     * Take part in an all-reduce (sum) as one member: the member's input tensor from a local, the sum of every
     * member's input into the member's output buffer (one {@code slotBytes} buffer on its device, held by the plan),
     * viewed by a local. Every member of the collective has one, for every execution; the collective's
     * communicator matches them in issue order, so all members issue their collectives in one order
     * ({@link NcclSchedule}).
     *
     * @param collective the collective's id in {@link #collectives()}
     * @param member     this actor's member index in it
     * @param inputLocal the local holding the member's input
     * @param local      destination local
     */
    public record AllReduce(int collective, int member, int inputLocal, int local) implements Operation {
    }

    /**
     * Publish a local into a channel.
     *
     * @param channel channel id
     * @param local   source local
     */
    public record Write(int channel, int local) implements Operation {
    }

    /** Where a method argument comes from. */
    public sealed interface Arg permits LocalArg, InputArg, ConstantArg {
    }

    /**
     * A value computed or read earlier in the same execution.
     *
     * @param local the local
     */
    public record LocalArg(int local) implements Arg {
    }

    /**
     * Positional argument {@code index} of the input record held in {@code local}.
     *
     * @param local the local holding the input record
     * @param index the argument position
     */
    public record InputArg(int local, int index) implements Arg {
    }

    /**
     * A constant passed to every execution.
     *
     * @param value the constant, possibly null
     */
    public record ConstantArg(Object value) implements Arg {
    }

    /**
     * The device memory of one GPU as the plan sees it. A GPU is its host and UUID; its index is the one the first
     * participant on it (in schedule order, the driver last) uses.
     *
     * @param host        the host of the GPU
     * @param device      the CUDA device index of the first participant on it
     * @param uuid        the device's UUID
     * @param freeBytes   free memory the topology reported (the smallest report of the participants on it)
     * @param budgetBytes the part of it the plan may hold: {@code freeBytes * CompileOptions.gpuMemoryFraction}
     * @param heldBytes   what the plan holds on it: receive slots of direct GPU edges read on it, one buffer per
     *                    staged edge read on it, one output buffer per all-reduce member on it, and
     *                    {@code ncclBytes}; may exceed the budget only through staging buffers, which have no fallback
     * @param ncclBytes   the part of {@code heldBytes} reserved for NCCL: per communicator with a rank on the device,
     *                    {@link CompileOptions#NCCL_RANK_BYTES} plus {@link CompileOptions#NCCL_PEER_BYTES} per peer
     *                    that rank talks to
     */
    public record DeviceMemory(String host, int device, String uuid, long freeBytes, long budgetBytes, long heldBytes,
                               long ncclBytes) {

        /**
         * Creates a {@code DeviceMemory}.
         *
         * @param host        host
         * @param device      device index
         * @param uuid        UUID
         * @param freeBytes   free bytes
         * @param budgetBytes budget
         * @param heldBytes   held bytes
         * @param ncclBytes   NCCL's part of the held bytes
         * @throws NullPointerException     if host or uuid is null
         * @throws IllegalArgumentException if {@code ncclBytes} is negative or above {@code heldBytes}
         */
        public DeviceMemory {
            Objects.requireNonNull(host, "host");
            Objects.requireNonNull(uuid, "uuid");
            if (ncclBytes < 0 || ncclBytes > heldBytes) {
                throw new IllegalArgumentException("ncclBytes must be in [0, heldBytes " + heldBytes + "], got "
                        + ncclBytes);
            }
        }

        /** {@return {@code host/gpuN} (without the UUID; {@link ExecutionPlan#deviceBytes()} adds it where needed)} */
        public String name() {
            return host + "/gpu" + device;
        }
    }

    /**
     * An NCCL communicator the executor creates for the plan ({@code ncclGetUniqueId} on rank 0's process,
     * {@code ncclCommInitRank} on each rank).
     *
     * @param id    its index in {@link #communicators()}
     * @param ranks the actor id of each rank, rank 0 first
     */
    public record CommunicatorSpec(int id, List<Integer> ranks) {

        /**
         * Creates a {@code CommunicatorSpec}.
         *
         * @param id    id
         * @param ranks actor ids by rank (copied)
         * @throws IllegalArgumentException if {@code ranks} is empty or names an actor twice
         */
        public CommunicatorSpec {
            ranks = List.copyOf(ranks);
            if (ranks.isEmpty() || new HashSet<>(ranks).size() != ranks.size()) {
                throw new IllegalArgumentException("a communicator needs distinct ranks, got " + ranks);
            }
        }

        /**
         * {@return its rank in this communicator, or -1}
         *
         * @param actor an actor id
         */
        public int rankOf(int actor) {
            return ranks.indexOf(actor);
        }
    }

    /**
     * An all-reduce (sum) over a group of GPU actors ({@code Graph.allReduce}).
     *
     * @param id           its index in {@link #collectives()}, the {@code k} of its nodes' labels {@code allreduce#k[i]}
     * @param members      the member actors' ids, in input order (member i computed input i)
     * @param communicator the id of the communicator it runs on, whose rank set equals {@code members}
     * @param nodes        the ids of its output nodes, in member order
     */
    public record CollectiveSpec(int id, List<Integer> members, int communicator, List<Integer> nodes) {

        /**
         * Creates a {@code CollectiveSpec}.
         *
         * @param id           id
         * @param members      member actor ids (copied)
         * @param communicator communicator id
         * @param nodes        output node ids (copied)
         * @throws IllegalArgumentException if there are fewer than 2 members, a member twice, or not one node per
         *                                  member
         */
        public CollectiveSpec {
            members = List.copyOf(members);
            nodes = List.copyOf(nodes);
            if (members.size() < 2 || new HashSet<>(members).size() != members.size()) {
                throw new IllegalArgumentException("a collective needs at least 2 distinct members, got " + members);
            }
            if (nodes.size() != members.size()) {
                throw new IllegalArgumentException(members.size() + " members but " + nodes.size() + " nodes");
            }
        }
    }

    /**
     * The NCCL work of a plan, per participating actor ("rank" here): the groups of sends, receives and collective
     * steps it issues, in order, once per execution. The ranks are first the point-to-point communicator's
     * (communicator 0, the actors that write or read an {@link Transport#NCCL} channel) in its rank order, so that
     * a send's or receive's peer is both an index here and a rank of communicator 0; then the actors that take
     * part only in collectives, in order of the actors' schedules. Every NCCL {@link Write}, NCCL {@link Read} and
     * {@link AllReduce} of a rank's actor schedule is, in schedule order, the rank's next group: a write is a group
     * of one send per reader, a read a group of one receive, an all-reduce a group of one
     * {@link CommOp.Kind#ALL_REDUCE}. For every pair of ranks, the sends of one to the other appear in the same
     * order as the other's receives from it; the ranks of a communicator issue its collectives in one order; and
     * the whole schedule completes under blocking semantics ({@link ScheduleChecker} proves these for a plan).
     *
     * @param ranks  the actor id of each rank, rank 0 first
     * @param groups for each rank, its groups in issue order
     */
    public record NcclSchedule(List<Integer> ranks, List<List<CommGroup>> groups) {

        /** The schedule of a plan without NCCL channels and collectives. */
        public static final NcclSchedule NONE = new NcclSchedule(List.of(), List.of());

        /**
         * Creates a {@code NcclSchedule}.
         *
         * @param ranks  actor ids by rank (copied)
         * @param groups groups by rank (copied)
         * @throws IllegalArgumentException if there is not one group list per rank
         */
        public NcclSchedule {
            ranks = List.copyOf(ranks);
            groups = groups.stream().map(List::copyOf).toList();
            if (ranks.size() != groups.size()) {
                throw new IllegalArgumentException(ranks.size() + " ranks but " + groups.size() + " group lists");
            }
        }

        /** {@return the number of ranks (0 without NCCL channels and collectives)} */
        public int size() {
            return ranks.size();
        }

        /**
         * {@return its index in {@link #ranks()} (its rank in communicator 0 if it has one there), or -1 if it takes
         *         no part in NCCL communication}
         *
         * @param actor an actor id
         */
        public int rankOf(int actor) {
            return ranks.indexOf(actor);
        }
    }

    /**
     * Operations one rank issues together, between {@code ncclGroupStart} and {@code ncclGroupEnd} when there
     * are several; the group completes when all of them have.
     *
     * @param ops the sends, receives and collective steps, at least one
     */
    public record CommGroup(List<CommOp> ops) {
        /**
         * Creates a {@code CommGroup}.
         *
         * @param ops operations (copied)
         * @throws IllegalArgumentException if empty
         */
        public CommGroup {
            ops = List.copyOf(ops);
            if (ops.isEmpty()) {
                throw new IllegalArgumentException("a group needs at least one operation");
            }
        }

        /** @return e.g. {@code SEND c2 -> r1}, {@code group(SEND c2 -> r1, SEND c2 -> r2)} or {@code ALL_REDUCE #0 (comm rank 1)} */
        @Override
        public String toString() {
            return ops.size() == 1 ? ops.getFirst().toString()
                    : "group(" + String.join(", ", ops.stream().map(CommOp::toString).toList()) + ")";
        }
    }

    /**
     * One NCCL operation of the current execution: a point-to-point send or receive of a channel's value, or one
     * member's step of a collective.
     *
     * @param kind    send, receive or all-reduce
     * @param channel the channel whose value moves; for {@link Kind#ALL_REDUCE}, the collective's id in
     *                {@link ExecutionPlan#collectives()}
     * @param peer    the rank sent to or received from (a rank of communicator 0); for {@link Kind#ALL_REDUCE}, this
     *                rank's own rank in the collective's communicator
     */
    public record CommOp(Kind kind, int channel, int peer) {

        /** What a {@link CommOp} does. */
        public enum Kind {
            /** {@code ncclSend} of the writer's value to {@code peer}. */
            SEND,
            /** {@code ncclRecv} into this rank's receive slot from {@code peer}. */
            RECV,
            /**
             * {@code ncclAllReduce} (sum) of the member's input into its output buffer on the collective's
             * communicator; completes when every member has issued it.
             */
            ALL_REDUCE
        }

        /**
         * Creates a {@code CommOp}.
         *
         * @param kind    kind
         * @param channel channel id, or collective id
         * @param peer    peer rank, or own rank in the collective's communicator
         */
        public CommOp {
            Objects.requireNonNull(kind, "kind");
        }

        /** @return {@code SEND c2 -> r1}, {@code RECV c2 <- r0} or {@code ALL_REDUCE #0 (comm rank 1)} */
        @Override
        public String toString() {
            return switch (kind) {
                case SEND -> "SEND c" + channel + " -> r" + peer;
                case RECV -> "RECV c" + channel + " <- r" + peer;
                case ALL_REDUCE -> "ALL_REDUCE #" + channel + " (comm rank " + peer + ")";
            };
        }
    }

    /**
     * Where the driver reads one output.
     *
     * @param channel channel id
     * @param reader  the driver's reader index in that channel
     */
    public record OutputRead(int channel, int reader) {
    }

    /**
     * @return the plan as readable text: channels, each actor's schedule (with the actor whose thread runs it, when
     * it shares one), the actors of each thread of each JVM where actors share threads ({@code threads:}, the
     * carrier first), the driver's part, then for plans with
     * GPUs the device memory, for plans with collectives the collectives and communicators, and the NCCL ranks with
     * their groups
     */
    @Override
    public String toString() {
        StringBuilder sb = new StringBuilder();
        sb.append("ExecutionPlan: ").append(count(schedules.size(), "actor")).append(", ")
                .append(count(channels.size(), "channel")).append(", ").append(count(inputArity, "input arg")).append(", ")
                .append(count(outputs.size(), "output")).append(multiOutput ? " (list)" : "")
                .append(", maxInflight ").append(maxInflight).append('\n');
        sb.append("channels:\n");
        for (ChannelSpec c : channels) {
            sb.append(String.format(Locale.ROOT, "  c%d %s: %s -> %s, %s (%s), %s\n", c.id,
                    c.node < 0 ? "input" : nodes.get(c.node).label,
                    participant(c.writer), c.readers.stream().map(this::participant).toList(), c.transport, c.reason,
                    count(c.slots, "slot")));
        }
        DeviceNames names = deviceNames();
        for (ActorSchedule s : schedules) {
            sb.append("actor ").append(s.name).append(" @ ").append(names.where(s.placement));
            if (s.sharesThread()) {
                sb.append(", on the thread of ").append(participant(s.carrier));
            }
            sb.append(":\n");
            for (Operation op : s.ops) {
                sb.append("  ").append(describe(op)).append('\n');
            }
        }
        appendThreads(sb);
        sb.append("driver: WRITE c").append(INPUT_CHANNEL).append(", READ ");
        sb.append(String.join(", ", outputs.stream().map(o -> "c" + o.channel).toList())).append('\n');
        if (!devices.isEmpty()) {
            sb.append("devices:\n");
            for (DeviceMemory d : devices) {
                sb.append(String.format(Locale.ROOT, "  %s/%s: holds %d B%s, budget %d B of %d B free\n", d.host,
                        names.gpu(d.host, d.device, d.uuid), d.heldBytes,
                        d.ncclBytes > 0 ? " (NCCL " + d.ncclBytes + " B)" : "", d.budgetBytes, d.freeBytes));
            }
        }
        if (!collectives.isEmpty()) {
            sb.append("collectives:\n");
            for (CollectiveSpec c : collectives) {
                CommunicatorSpec comm = communicators.get(c.communicator);
                List<String> members = new ArrayList<>();
                List<String> inputs = new ArrayList<>();
                for (int i = 0; i < c.members.size(); i++) {
                    members.add("r" + comm.rankOf(c.members.get(i)) + " " + participant(c.members.get(i)));
                    inputs.add(nodes.get(nodes.get(c.nodes.get(i)).upstream.getFirst()).label);
                }
                sb.append("  allreduce#").append(c.id).append(" over comm").append(c.communicator).append(" [")
                        .append(String.join(", ", members)).append("]: sums ").append(String.join(", ", inputs))
                        .append('\n');
            }
            sb.append("communicators:\n");
            for (CommunicatorSpec comm : communicators) {
                List<String> ranks = new ArrayList<>();
                for (int r = 0; r < comm.ranks.size(); r++) {
                    ranks.add("r" + r + " " + participant(comm.ranks.get(r)));
                }
                List<String> uses = new ArrayList<>();
                if (comm.id == 0 && channels.stream().anyMatch(ch -> ch.transport == Transport.NCCL)) {
                    uses.add("point-to-point");
                }
                collectives.stream().filter(c -> c.communicator == comm.id).forEach(c -> uses.add("allreduce#" + c.id));
                sb.append("  comm").append(comm.id).append(": ").append(String.join(", ", ranks)).append(" (")
                        .append(String.join(", ", uses)).append(")\n");
            }
        }
        if (nccl.size() > 0) {
            sb.append("nccl: ").append(count(nccl.size(), "rank")).append('\n');
            for (int r = 0; r < nccl.size(); r++) {
                sb.append("  r").append(r).append(' ').append(participant(nccl.ranks.get(r))).append(": ")
                        .append(String.join("; ", nccl.groups.get(r).stream().map(CommGroup::toString).toList()))
                        .append('\n');
            }
        }
        return sb.toString();
    }

    /** Appends, for each JVM where actors share threads, the actors of each of its threads, the carrier first. */
    private void appendThreads(StringBuilder sb) {
        Map<Topology.ActorPlacement, Map<Integer, List<String>>> threads = new LinkedHashMap<>();
        for (ActorSchedule s : schedules) {
            threads.computeIfAbsent(s.placement.jvm(), k -> new LinkedHashMap<>())
                    .computeIfAbsent(s.carrier, c -> new ArrayList<>(List.of(participant(c))));
            if (s.sharesThread()) {
                threads.get(s.placement.jvm()).get(s.carrier).add(s.name);
            }
        }
        threads.values().removeIf(jvm -> jvm.values().stream().allMatch(actors -> actors.size() == 1));
        if (threads.isEmpty()) {
            return;
        }
        sb.append("threads:\n");
        threads.forEach((jvm, carriers) -> {
            sb.append("  ").append(jvm).append(':');
            carriers.values().forEach(actors -> sb.append(" [").append(String.join(" ", actors)).append(']'));
            sb.append('\n');
        });
    }

    /**
     * {@return the plan as a Graphviz DOT digraph: one cluster per actor (labelled with its GPU, if it has one, or
     * the actor whose thread runs it, if it shares one),
     * edges labelled with their channel and transport, one hexagon per all-reduce joined to its members' outputs}
     */
    public String toDot() {
        StringBuilder sb = new StringBuilder("digraph kiln {\n  rankdir=LR;\n  node [shape=box];\n");
        sb.append("  subgraph cluster_driver {\n    label=\"driver\";\n");
        sb.append("    n_in [label=\"input\", shape=ellipse];\n    n_out [label=\"output\", shape=ellipse];\n  }\n");
        for (ActorSchedule s : schedules) {
            String label = s.placement.hasGpu() ? s.name + " (gpu" + s.placement.device() + ")"
                    : s.sharesThread() ? s.name + " (on the thread of " + participant(s.carrier) + ")" : s.name;
            sb.append("  subgraph cluster_a").append(s.actor).append(" {\n    label=\"").append(escape(label)).append("\";\n");
            for (Operation op : s.ops) {
                if (op instanceof Compute c) {
                    sb.append("    n").append(c.node).append(" [label=\"").append(escape(nodes.get(c.node).label)).append("\"];\n");
                } else if (op instanceof AllReduce r) {
                    int node = collectives.get(r.collective).nodes.get(r.member);
                    sb.append("    n").append(node).append(" [label=\"").append(nodes.get(node).label)
                            .append("\", shape=hexagon];\n");
                }
            }
            sb.append("  }\n");
        }
        for (CollectiveSpec c : collectives) {
            sb.append("  allreduce").append(c.id).append(" [label=\"allreduce#").append(c.id).append(" comm")
                    .append(c.communicator).append("\", shape=doubleoctagon];\n");
            for (int node : c.nodes) {
                sb.append("  allreduce").append(c.id).append(" -> n").append(node).append(" [style=dashed];\n");
            }
        }
        for (NodeSpec n : nodes) {
            if (n.actor == DRIVER) {
                continue;
            }
            for (int up : n.upstream) {
                NodeSpec from = nodes.get(up);
                String source = from.actor == DRIVER ? "n_in" : "n" + up;
                sb.append("  ").append(source).append(" -> n").append(n.id).append(" [label=\"")
                        .append(edgeLabel(from, n.actor)).append("\"];\n");
            }
        }
        for (OutputRead o : outputs) {
            ChannelSpec c = channels.get(o.channel);
            sb.append("  n").append(c.node).append(" -> n_out [label=\"c").append(c.id).append(' ')
                    .append(c.transport).append("\"];\n");
        }
        return sb.append("}\n").toString();
    }

    private String edgeLabel(NodeSpec from, int readerActor) {
        if (from.actor == readerActor) {
            return "local";
        }
        for (ChannelSpec c : channels) {
            if (c.node == from.id || (from.actor == DRIVER && c.id == INPUT_CHANNEL)) {
                return "c" + c.id + " " + c.transport;
            }
        }
        throw new IllegalStateException("no channel for " + from.label);
    }

    private String describe(Operation op) {
        return switch (op) {
            case Read r -> String.format(Locale.ROOT, "READ    c%d -> l%d", r.channel, r.local);
            case Write w -> String.format(Locale.ROOT, "WRITE   l%d -> c%d", w.local, w.channel);
            case AllReduce r -> String.format(Locale.ROOT, "ALLREDUCE #%d(l%d) -> l%d", r.collective, r.inputLocal,
                    r.local);
            case Compute c -> String.format(Locale.ROOT, "COMPUTE %s(%s) -> l%d", c.method.displayName(),
                    String.join(", ", c.args.stream().map(this::describe).toList()), c.local);
        };
    }

    private String describe(Arg arg) {
        return switch (arg) {
            case LocalArg l -> "l" + l.local;
            case InputArg i -> inputArity > 1 ? "l" + i.local + "[" + i.index + "]" : "l" + i.local;
            case ConstantArg k -> k.value instanceof String s ? '"' + s + '"' : String.valueOf(k.value);
        };
    }

    private static String count(int n, String noun) {
        return n + " " + noun + (n == 1 ? "" : "s");
    }

    private String participant(int id) {
        if (id == DRIVER) {
            return "driver";
        }
        for (ActorSchedule s : schedules) {
            if (s.actor == id) {
                return s.name;
            }
        }
        return "actor#" + id;
    }

    private static String escape(String s) {
        return s.replace("\\", "\\\\").replace("\"", "\\\"");
    }
}
