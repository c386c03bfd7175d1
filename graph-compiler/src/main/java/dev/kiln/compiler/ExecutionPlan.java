package dev.kiln.compiler;

import dev.kiln.graph.MethodRef;
import dev.kiln.graph.Transport;

import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Objects;

/**
 * What the compiler made of a graph: one channel per edge that crosses actors, one schedule of
 * READ / COMPUTE / WRITE operations per actor, and how the driver feeds the input and reads
 * the outputs. Plain data: printed by {@link #toString()} and {@link #toDot()}, compared in
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
 * @param devices      the GPUs the plan's actors use, with the device memory the plan holds on each, by host
 *                     then device index; empty when no actor has a GPU
 * @param nccl         the NCCL communicator and each rank's ordered send/receive groups; {@link NcclSchedule#NONE}
 *                     when no channel uses {@link Transport#NCCL}
 */
public record ExecutionPlan(int inputArity, int maxInflight, List<NodeSpec> nodes, List<ChannelSpec> channels,
                            List<ActorSchedule> schedules, List<OutputRead> outputs, boolean multiOutput,
                            List<DeviceMemory> devices, NcclSchedule nccl) {

    /** The participant id of the driver. */
    public static final int DRIVER = -1;

    /** The id of the channel that carries the input from the driver. */
    public static final int INPUT_CHANNEL = 0;

    /**
     * @param inputArity  input arguments
     * @param maxInflight in-flight bound
     * @param nodes       nodes (copied)
     * @param channels    channels (copied)
     * @param schedules   schedules (copied)
     * @param outputs     outputs (copied)
     * @param multiOutput list-valued results
     * @param devices     device memory (copied)
     * @param nccl        the NCCL schedule
     */
    public ExecutionPlan {
        nodes = List.copyOf(nodes);
        channels = List.copyOf(channels);
        schedules = List.copyOf(schedules);
        outputs = List.copyOf(outputs);
        devices = List.copyOf(devices);
        Objects.requireNonNull(nccl, "nccl");
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
     * The device memory the plan holds, per GPU: receive slots of direct GPU edges and the one
     * device buffer per GPU reader of each staged edge.
     *
     * @return bytes held by device name ({@code host/gpuN}), in the order of {@link #devices()}
     */
    public Map<String, Long> deviceBytes() {
        Map<String, Long> bytes = new LinkedHashMap<>();
        for (DeviceMemory d : devices) {
            bytes.put(d.name(), d.heldBytes());
        }
        return Collections.unmodifiableMap(bytes);
    }

    /**
     * A node of the compiled graph.
     *
     * @param id       index in {@link #nodes()}, in topological order
     * @param label    {@code input}, {@code input[i]} or {@code actor.method}
     * @param actor    the actor that computes it, or {@link #DRIVER} for the input
     * @param upstream ids of the nodes it reads, in argument order
     */
    public record NodeSpec(int id, String label, int actor, List<Integer> upstream) {
        /**
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
     */
    public record ActorSchedule(int actor, String name, Topology.ActorPlacement placement, int frameSize,
                                List<Operation> ops) {
        /**
         * @param actor     actor id
         * @param name      actor name
         * @param placement placement
         * @param frameSize frame size
         * @param ops       operations (copied)
         */
        public ActorSchedule {
            ops = List.copyOf(ops);
        }
    }

    /** One step of an actor's schedule. */
    public sealed interface Operation permits Read, Compute, Write {
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
     * The device memory of one GPU as the plan sees it.
     *
     * @param host        the host of the GPU
     * @param device      the CUDA device index on that host
     * @param freeBytes   free memory the topology reported (the smallest report of the actors on it)
     * @param budgetBytes the part of it the plan may hold: {@code freeBytes * CompileOptions.gpuMemoryFraction}
     * @param heldBytes   what the plan holds on it: receive slots of direct GPU edges plus one buffer per staged edge
     *                    read on it; may exceed the budget only through staging buffers, which have no fallback
     */
    public record DeviceMemory(String host, int device, long freeBytes, long budgetBytes, long heldBytes) {

        /** @return {@code host/gpuN} */
        public String name() {
            return host + "/gpu" + device;
        }
    }

    /**
     * The point-to-point NCCL communication of a plan: one communicator whose ranks are the actors that
     * write or read an {@link Transport#NCCL} channel, and for each rank the groups of sends and receives
     * it issues, in order, once per execution. Every NCCL {@link Write} and {@link Read} of a rank's actor
     * schedule is, in schedule order, the rank's next group: a write is a group of one send per reader,
     * a read a group of one receive. For every pair of ranks, the sends of one to the other appear in the
     * same order as the other's receives from it, and the whole schedule completes under blocking
     * send/receive semantics ({@link ScheduleChecker} proves both for a plan).
     *
     * @param ranks  the actor id of each rank, rank 0 first (in order of the actors' schedules)
     * @param groups for each rank, its groups in issue order
     */
    public record NcclSchedule(List<Integer> ranks, List<List<CommGroup>> groups) {

        /** The schedule of a plan without NCCL channels. */
        public static final NcclSchedule NONE = new NcclSchedule(List.of(), List.of());

        /**
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

        /** @return the number of ranks (0 without NCCL channels) */
        public int size() {
            return ranks.size();
        }

        /**
         * @param actor an actor id
         * @return its rank, or -1 if it takes no part in NCCL communication
         */
        public int rankOf(int actor) {
            return ranks.indexOf(actor);
        }
    }

    /**
     * Operations one rank issues together, between {@code ncclGroupStart} and {@code ncclGroupEnd} when there
     * are several; the group completes when all of them have.
     *
     * @param ops the sends and receives, at least one
     */
    public record CommGroup(List<CommOp> ops) {
        /**
         * @param ops operations (copied)
         * @throws IllegalArgumentException if empty
         */
        public CommGroup {
            ops = List.copyOf(ops);
            if (ops.isEmpty()) {
                throw new IllegalArgumentException("a group needs at least one operation");
            }
        }

        /** @return e.g. {@code SEND c2 -> r1} or {@code group(SEND c2 -> r1, SEND c2 -> r2)} */
        @Override
        public String toString() {
            return ops.size() == 1 ? ops.getFirst().toString()
                    : "group(" + String.join(", ", ops.stream().map(CommOp::toString).toList()) + ")";
        }
    }

    /**
     * One point-to-point NCCL operation: the value of a channel for the current execution.
     *
     * @param kind    send or receive
     * @param channel the channel whose value moves
     * @param peer    the rank sent to or received from
     */
    public record CommOp(Kind kind, int channel, int peer) {

        /** Direction of a {@link CommOp}. */
        public enum Kind {
            /** {@code ncclSend} of the writer's value to {@code peer}. */
            SEND,
            /** {@code ncclRecv} into this rank's receive slot from {@code peer}. */
            RECV
        }

        /**
         * @param kind    kind
         * @param channel channel id
         * @param peer    peer rank
         */
        public CommOp {
            Objects.requireNonNull(kind, "kind");
        }

        /** @return {@code SEND c2 -> r1} or {@code RECV c2 <- r0} */
        @Override
        public String toString() {
            return kind + " c" + channel + (kind == Kind.SEND ? " -> r" : " <- r") + peer;
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
     * @return the plan as readable text: channels, each actor's schedule, the driver's part, then for plans with
     * GPUs the device memory and the NCCL ranks with their groups
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
        for (ActorSchedule s : schedules) {
            sb.append("actor ").append(s.name).append(" @ ").append(s.placement).append(":\n");
            for (Operation op : s.ops) {
                sb.append("  ").append(describe(op)).append('\n');
            }
        }
        sb.append("driver: WRITE c").append(INPUT_CHANNEL).append(", READ ");
        sb.append(String.join(", ", outputs.stream().map(o -> "c" + o.channel).toList())).append('\n');
        if (!devices.isEmpty()) {
            sb.append("devices:\n");
            for (DeviceMemory d : devices) {
                sb.append(String.format(Locale.ROOT, "  %s: holds %d B, budget %d B of %d B free\n", d.name(),
                        d.heldBytes, d.budgetBytes, d.freeBytes));
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

    /**
     * @return the plan as a Graphviz DOT digraph: one cluster per actor (labelled with its GPU, if it has one),
     * edges labelled with their channel and transport
     */
    public String toDot() {
        StringBuilder sb = new StringBuilder("digraph kiln {\n  rankdir=LR;\n  node [shape=box];\n");
        sb.append("  subgraph cluster_driver {\n    label=\"driver\";\n");
        sb.append("    n_in [label=\"input\", shape=ellipse];\n    n_out [label=\"output\", shape=ellipse];\n  }\n");
        for (ActorSchedule s : schedules) {
            String label = s.placement.hasGpu() ? s.name + " (gpu" + s.placement.device() + ")" : s.name;
            sb.append("  subgraph cluster_a").append(s.actor).append(" {\n    label=\"").append(escape(label)).append("\";\n");
            for (Operation op : s.ops) {
                if (op instanceof Compute c) {
                    sb.append("    n").append(c.node).append(" [label=\"").append(escape(nodes.get(c.node).label)).append("\"];\n");
                }
            }
            sb.append("  }\n");
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
