package dev.kiln.executor.wire;

import dev.kiln.compiler.ActorDeathPolicy;
import dev.kiln.compiler.CompileOptions;
import dev.kiln.compiler.ExecutionPlan;
import dev.kiln.compiler.ExecutionPlan.ActorSchedule;
import dev.kiln.compiler.ExecutionPlan.AllReduce;
import dev.kiln.compiler.ExecutionPlan.Arg;
import dev.kiln.compiler.ExecutionPlan.ChannelSpec;
import dev.kiln.compiler.ExecutionPlan.CollectiveSpec;
import dev.kiln.compiler.ExecutionPlan.CommGroup;
import dev.kiln.compiler.ExecutionPlan.CommOp;
import dev.kiln.compiler.ExecutionPlan.CommunicatorSpec;
import dev.kiln.compiler.ExecutionPlan.Compute;
import dev.kiln.compiler.ExecutionPlan.ConstantArg;
import dev.kiln.compiler.ExecutionPlan.DeviceMemory;
import dev.kiln.compiler.ExecutionPlan.InputArg;
import dev.kiln.compiler.ExecutionPlan.LocalArg;
import dev.kiln.compiler.ExecutionPlan.NcclSchedule;
import dev.kiln.compiler.ExecutionPlan.NodeSpec;
import dev.kiln.compiler.ExecutionPlan.Operation;
import dev.kiln.compiler.ExecutionPlan.OutputRead;
import dev.kiln.compiler.ExecutionPlan.Read;
import dev.kiln.compiler.ExecutionPlan.Write;
import dev.kiln.compiler.IdleMode;
import dev.kiln.compiler.Topology.ActorPlacement;
import dev.kiln.graph.MethodRef;
import dev.kiln.graph.Transport;
import dev.kiln.transport.ValueCodec;

import java.io.Serializable;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.function.BiConsumer;
import java.util.function.Function;

/**
 * Sends an {@link ExecutionPlan} and {@link CompileOptions} to a worker JVM without Java object
 * serialization: every record component in order, methods through {@link LambdaCodec}, constant
 * arguments through the {@link ValueCodec}, enums by name. The reader rebuilds each
 * {@link MethodRef} with {@link MethodRef#of}, so its names and types are resolved in the
 * worker's class loader.
 *
 * <p>Each record has one write and one read method listing its components in the same order, so
 * a new component is one line on each side. A message starts with a magic number and a format
 * version; bump {@code VERSION} when the layout changes.
 *
 * <p>Stateless and thread-safe.
 */
public final class PlanCodec {

    /** "KPLN" and "KOPT" as little-endian ints: the first bytes of a plan and of options. */
    private static final int PLAN_MAGIC = 0x4E4C504B;
    private static final int OPTIONS_MAGIC = 0x54504F4B;
    private static final int VERSION = 4;
    /** Bounds on what a worker allocates from a plan: far above what any plan has. */
    private static final int MAX_SLOTS = 1 << 24;
    private static final long MAX_SLOT_BYTES = 1L << 40;
    private static final int MAX_FRAME_SIZE = 1 << 20;

    private static final int READ = 1;
    private static final int COMPUTE = 2;
    private static final int WRITE = 3;
    private static final int ALL_REDUCE = 4;
    private static final int LOCAL_ARG = 1;
    private static final int INPUT_ARG = 2;
    private static final int CONSTANT_ARG = 3;

    private PlanCodec() {
    }

    /**
     * Encodes a plan as one message.
     *
     * @param plan  a compiled plan
     * @param codec encodes constant arguments and captured values; the reader needs the same registrations
     * @return the plan as bytes for {@link #decode(byte[], ValueCodec, ClassLoader)}
     * @throws IllegalArgumentException if a constant or a method cannot be sent; the message names the
     *                                  method and what to register
     */
    public static byte[] encode(ExecutionPlan plan, ValueCodec codec) {
        WireOut out = new WireOut();
        write(out, plan, codec);
        return out.toByteArray();
    }

    /**
     * Decodes a plan, resolving its methods in this process.
     *
     * @param bytes  what {@link #encode(ExecutionPlan, ValueCodec)} returned, and nothing more
     * @param codec  decodes constants and captured values; needs the writer's registrations
     * @param loader loads the actors' classes and the classes that declare the methods
     * @return the plan; constant tensors own their memory
     * @throws IllegalArgumentException if the bytes are truncated, corrupt, from another format version, or
     *                                  name classes or methods this process does not have
     */
    public static ExecutionPlan decode(byte[] bytes, ValueCodec codec, ClassLoader loader) {
        WireIn in = new WireIn(bytes);
        ExecutionPlan plan = readPlan(in, codec, loader);
        in.expectEnd();
        return plan;
    }

    /**
     * Encodes compile options as one message, as {@link #write(WireOut, CompileOptions)} does (without the death
     * policy).
     *
     * @param options compile options
     * @return them as bytes for {@link #decodeOptions(byte[])}
     */
    public static byte[] encode(CompileOptions options) {
        WireOut out = new WireOut();
        write(out, options);
        return out.toByteArray();
    }

    /**
     * Decodes compile options.
     *
     * @param bytes what {@link #encode(CompileOptions)} returned, and nothing more
     * @return the options
     * @throws IllegalArgumentException if the bytes are truncated, corrupt (including values {@code CompileOptions}
     *                                  refuses) or from another format version
     */
    public static CompileOptions decodeOptions(byte[] bytes) {
        WireIn in = new WireIn(bytes);
        CompileOptions options = readOptions(in);
        in.expectEnd();
        return options;
    }

    /**
     * Appends a plan to a message, for messages that carry more than a plan.
     *
     * @param out   the message
     * @param plan  a compiled plan
     * @param codec encodes constant arguments and captured values
     * @throws IllegalArgumentException as {@link #encode(ExecutionPlan, ValueCodec)}; the content of {@code out}
     *                                  is then unspecified
     */
    public static void write(WireOut out, ExecutionPlan plan, ValueCodec codec) {
        out.writeInt(PLAN_MAGIC);
        out.writeInt(VERSION);
        out.writeInt(plan.inputArity());
        out.writeInt(plan.maxInflight());
        writeList(out, plan.nodes(), PlanCodec::writeNode);
        writeList(out, plan.channels(), PlanCodec::writeChannel);
        writeList(out, plan.schedules(), (o, s) -> writeSchedule(o, s, codec));
        writeList(out, plan.outputs(), PlanCodec::writeOutput);
        out.writeBoolean(plan.multiOutput());
        writeList(out, plan.devices(), PlanCodec::writeDevice);
        writeList(out, plan.nccl().ranks(), WireOut::writeInt);
        writeList(out, plan.nccl().groups(), (o, groups) -> writeList(o, groups, PlanCodec::writeGroup));
        writeList(out, plan.communicators(), PlanCodec::writeCommunicator);
        writeList(out, plan.collectives(), PlanCodec::writeCollective);
    }

    /**
     * Reads a plan written by {@link #write(WireOut, ExecutionPlan, ValueCodec)}.
     *
     * @param in     the message
     * @param codec  decodes constants and captured values
     * @param loader loads the classes the plan names
     * @return the plan
     * @throws IllegalArgumentException as {@link #decode(byte[], ValueCodec, ClassLoader)}
     */
    public static ExecutionPlan readPlan(WireIn in, ValueCodec codec, ClassLoader loader) {
        readHeader(in, PLAN_MAGIC, "ExecutionPlan");
        ExecutionPlan plan = new ExecutionPlan(
                in.readInt(),
                in.readInt(),
                readList(in, PlanCodec::readNode),
                readList(in, PlanCodec::readChannel),
                readList(in, i -> readSchedule(i, codec, loader)),
                readList(in, PlanCodec::readOutput),
                in.readBoolean(),
                readList(in, PlanCodec::readDevice),
                new NcclSchedule(readList(in, WireIn::readInt),
                        readList(in, i -> readList(i, PlanCodec::readGroup))),
                readList(in, PlanCodec::readCommunicator),
                readList(in, PlanCodec::readCollective));
        checkGpuReferences(plan);
        return plan;
    }

    /**
     * Checks what the GPU half of a received plan refers to, so that a corrupt plan is refused here, saying what is
     * wrong, rather than failing with an index exception when the graph opens: device indices are not negative; every
     * all-reduce step names a collective of the plan that has the step's actor as that member, and locals of the
     * actor's frame; every collective's output nodes are nodes of the plan; every NCCL send and receive names a
     * channel and a rank of the plan, and every NCCL all-reduce a collective and a rank of its communicator.
     */
    private static void checkGpuReferences(ExecutionPlan plan) {
        for (DeviceMemory d : plan.devices()) {
            if (d.device() < 0) {
                throw corrupt("the plan's GPU " + d.host() + " [" + d.uuid() + "] has device index " + d.device());
            }
        }
        for (CollectiveSpec c : plan.collectives()) {
            for (int node : c.nodes()) {
                checkIndex(node, plan.nodes().size(), "allreduce#" + c.id() + " outputs node", "nodes");
            }
        }
        Map<Integer, ActorSchedule> byActor = new HashMap<>();
        for (ActorSchedule s : plan.schedules()) {
            byActor.put(s.actor(), s);
        }
        for (ActorSchedule s : plan.schedules()) {
            checkCarrier(s, byActor, plan.channels());
            for (Operation op : s.ops()) {
                if (op instanceof AllReduce a) {
                    String what = "actor #" + s.actor() + "'s ALLREDUCE";
                    checkIndex(a.collective(), plan.collectives().size(), what + " names collective", "collectives");
                    List<Integer> members = plan.collectives().get(a.collective()).members();
                    if (a.member() < 0 || a.member() >= members.size() || members.get(a.member()) != s.actor()) {
                        throw corrupt(what + " claims member " + a.member() + " of allreduce#" + a.collective()
                                + ", whose members are actors " + members);
                    }
                    checkIndex(a.inputLocal(), s.frameSize(), what + " reads local", "locals");
                    checkIndex(a.local(), s.frameSize(), what + " writes local", "locals");
                }
            }
        }
        NcclSchedule nccl = plan.nccl();
        for (int r = 0; r < nccl.size(); r++) {
            for (CommGroup group : nccl.groups().get(r)) {
                for (CommOp op : group.ops()) {
                    String what = "NCCL rank " + r + "'s " + op.kind();
                    if (op.kind() == CommOp.Kind.ALL_REDUCE) {
                        checkIndex(op.channel(), plan.collectives().size(), what + " names collective", "collectives");
                        int ranks = plan.communicators().get(plan.collectives().get(op.channel()).communicator())
                                .ranks().size();
                        checkIndex(op.peer(), ranks, what + " is rank", "ranks in its communicator");
                    } else {
                        checkIndex(op.channel(), plan.channels().size(), what + " names channel", "channels");
                        checkIndex(op.peer(), nccl.size(), what + " names peer rank", "NCCL ranks");
                    }
                }
            }
        }
    }

    /**
     * A shared thread is one of the plan's actors in the same process, which runs on its own thread, and both may
     * share ({@link ExecutionPlan#mayShareThread}).
     */
    private static void checkCarrier(ActorSchedule s, Map<Integer, ActorSchedule> byActor, List<ChannelSpec> channels) {
        if (!s.sharesThread()) {
            return;
        }
        ActorSchedule c = byActor.get(s.carrier());
        if (c == null || c.sharesThread() || !c.placement().process().equals(s.placement().process())) {
            throw corrupt("actor #" + s.actor() + " is to run on the thread of actor #" + s.carrier()
                    + ", which is not an actor of the plan in process " + s.placement().process()
                    + " running on a thread of its own");
        }
        for (ActorSchedule a : List.of(s, c)) {
            if (!ExecutionPlan.mayShareThread(a, channels)) {
                throw corrupt("actor #" + s.actor() + " is to run on the thread of actor #" + s.carrier()
                        + ", but actor #" + a.actor() + " may not share a thread (a GPU, an all-reduce or a channel"
                        + " to another process)");
            }
        }
    }

    private static void checkIndex(int index, int size, String what, String of) {
        if (index < 0 || index >= size) {
            throw corrupt(what + " " + index + ", but the plan has " + size + " " + of);
        }
    }

    private static IllegalArgumentException corrupt(String why) {
        return new IllegalArgumentException("corrupt wire message: " + why);
    }

    private static void writeDevice(WireOut out, DeviceMemory d) {
        out.writeString(d.host());
        out.writeInt(d.device());
        out.writeString(d.uuid());
        out.writeLong(d.freeBytes());
        out.writeLong(d.budgetBytes());
        out.writeLong(d.heldBytes());
        out.writeLong(d.ncclBytes());
    }

    private static DeviceMemory readDevice(WireIn in) {
        return new DeviceMemory(
                readRequiredString(in, "a GPU's host"),
                in.readInt(),
                readRequiredString(in, "a GPU's UUID"),
                in.readLong(),
                in.readLong(),
                in.readLong(),
                in.readLong());
    }

    private static void writeGroup(WireOut out, CommGroup group) {
        writeList(out, group.ops(), (o, op) -> {
            writeEnum(o, op.kind());
            o.writeInt(op.channel());
            o.writeInt(op.peer());
        });
    }

    private static CommGroup readGroup(WireIn in) {
        return new CommGroup(readList(in, i -> new CommOp(
                readEnum(i, CommOp.Kind.class),
                i.readInt(),
                i.readInt())));
    }

    private static void writeCommunicator(WireOut out, CommunicatorSpec c) {
        out.writeInt(c.id());
        writeList(out, c.ranks(), WireOut::writeInt);
    }

    private static CommunicatorSpec readCommunicator(WireIn in) {
        return new CommunicatorSpec(
                in.readInt(),
                readList(in, WireIn::readInt));
    }

    private static void writeCollective(WireOut out, CollectiveSpec c) {
        out.writeInt(c.id());
        writeList(out, c.members(), WireOut::writeInt);
        out.writeInt(c.communicator());
        writeList(out, c.nodes(), WireOut::writeInt);
    }

    private static CollectiveSpec readCollective(WireIn in) {
        return new CollectiveSpec(
                in.readInt(),
                readList(in, WireIn::readInt),
                in.readInt(),
                readList(in, WireIn::readInt));
    }

    /**
     * Appends compile options to a message: every one but the limits of {@link CompileOptions#onActorDeath()} and
     * {@link CompileOptions#statistics()}, which only the driver acts on (it alone restarts a graph and keeps its
     * statistics); of the policy only whether the graph restarts crosses (a worker holds a restarting graph's actors
     * alone), and {@link #readOptions} gives {@link ActorDeathPolicy#RESTART} or {@link ActorDeathPolicy#FAIL} for it,
     * and statistics on.
     *
     * @param out     the message
     * @param options compile options
     */
    public static void write(WireOut out, CompileOptions options) {
        out.writeInt(OPTIONS_MAGIC);
        out.writeInt(VERSION);
        out.writeInt(options.maxInflight());
        out.writeLong(options.bufferBytes());
        out.writeLong(nanos(options.submitTimeout()));
        out.writeLong(nanos(options.getTimeout()));
        out.writeLong(nanos(options.teardownTimeout()));
        writeEnum(out, options.idle());
        out.writeBoolean(options.slotGrowth());
        out.writeLong(Double.doubleToRawLongBits(options.gpuMemoryFraction()));
        out.writeBoolean(options.overlapGpuCommunication());
        out.writeBoolean(options.checkViews());
        out.writeInt(options.actorThreads());
        out.writeBoolean(options.onActorDeath().restart());
    }

    /**
     * Reads options written by {@link #write(WireOut, CompileOptions)}.
     *
     * @param in the message
     * @return the options
     * @throws IllegalArgumentException as {@link #decodeOptions(byte[])}
     */
    public static CompileOptions readOptions(WireIn in) {
        readHeader(in, OPTIONS_MAGIC, "CompileOptions");
        int maxInflight = in.readInt();
        long bufferBytes = in.readLong();
        Duration submitTimeout = Duration.ofNanos(in.readLong());
        Duration getTimeout = Duration.ofNanos(in.readLong());
        Duration teardownTimeout = Duration.ofNanos(in.readLong());
        IdleMode idle = readEnum(in, IdleMode.class);
        boolean slotGrowth = in.readBoolean();
        double gpuMemoryFraction = Double.longBitsToDouble(in.readLong());
        boolean overlap = in.readBoolean();
        boolean checkViews = in.readBoolean();
        int actorThreads = in.readInt();
        // The driver alone restarts a graph and keeps its statistics: its workers learn only whether it restarts
        // (they hold its actors alone then) and get the defaults.
        ActorDeathPolicy policy = in.readBoolean() ? ActorDeathPolicy.RESTART : ActorDeathPolicy.FAIL;
        return new CompileOptions(maxInflight, bufferBytes, submitTimeout, getTimeout, teardownTimeout, idle,
                slotGrowth, gpuMemoryFraction, overlap, checkViews, policy, CompileOptions.defaults().statistics(),
                actorThreads);
    }

    private static void writeNode(WireOut out, NodeSpec node) {
        out.writeInt(node.id());
        out.writeString(node.label());
        out.writeInt(node.actor());
        writeList(out, node.upstream(), WireOut::writeInt);
    }

    private static NodeSpec readNode(WireIn in) {
        return new NodeSpec(
                in.readInt(),
                in.readString(),
                in.readInt(),
                readList(in, WireIn::readInt));
    }

    private static void writeChannel(WireOut out, ChannelSpec channel) {
        out.writeInt(channel.id());
        out.writeInt(channel.node());
        out.writeInt(channel.writer());
        writeList(out, channel.readers(), WireOut::writeInt);
        out.writeInt(channel.slots());
        out.writeLong(channel.slotBytes());
        writeEnum(out, channel.transport());
        out.writeString(channel.reason());
    }

    private static ChannelSpec readChannel(WireIn in) {
        ChannelSpec c = new ChannelSpec(
                in.readInt(),
                in.readInt(),
                in.readInt(),
                readList(in, WireIn::readInt),
                in.readInt(),
                in.readLong(),
                readEnum(in, Transport.class),
                in.readString());
        // What a worker allocates from: bounded before it does.
        checkRange(c.slots(), 1, MAX_SLOTS, "channel c" + c.id() + "'s slots");
        if (c.slotBytes() < 0 || c.slotBytes() > MAX_SLOT_BYTES) {
            throw corrupt("channel c" + c.id() + "'s slots of " + c.slotBytes() + " bytes; 0 to " + MAX_SLOT_BYTES);
        }
        return c;
    }

    private static void checkRange(int value, int min, int max, String what) {
        if (value < min || value > max) {
            throw corrupt(what + " " + value + "; " + min + " to " + max);
        }
    }

    private static void writeSchedule(WireOut out, ActorSchedule schedule, ValueCodec codec) {
        out.writeInt(schedule.actor());
        out.writeString(schedule.name());
        writePlacement(out, schedule.placement());
        out.writeInt(schedule.frameSize());
        writeList(out, schedule.ops(), (o, op) -> writeOperation(o, op, codec));
        out.writeInt(schedule.carrier());
    }

    private static ActorSchedule readSchedule(WireIn in, ValueCodec codec, ClassLoader loader) {
        int actor = in.readInt();
        String name = in.readString();
        ActorPlacement placement = readPlacement(in);
        int frameSize = in.readInt();
        checkRange(frameSize, 0, MAX_FRAME_SIZE, "actor " + actor + "'s frame of locals");
        List<Operation> ops = readList(in, i -> readOperation(i, codec, loader));
        return new ActorSchedule(actor, name, placement, frameSize, ops, in.readInt());
    }

    private static void writePlacement(WireOut out, ActorPlacement placement) {
        out.writeString(placement.host());
        out.writeString(placement.process());
        out.writeInt(placement.device());
        out.writeString(placement.deviceUuid());
        out.writeLong(placement.freeDeviceBytes());
    }

    private static ActorPlacement readPlacement(WireIn in) {
        return new ActorPlacement(
                readRequiredString(in, "an actor's host"),
                readRequiredString(in, "an actor's process"),
                in.readInt(),
                in.readString(),
                in.readLong());
    }

    private static void writeOperation(WireOut out, Operation op, ValueCodec codec) {
        switch (op) {
            case Read r -> {
                out.writeInt(READ);
                out.writeInt(r.channel());
                out.writeInt(r.reader());
                out.writeInt(r.local());
            }
            case Compute c -> {
                out.writeInt(COMPUTE);
                out.writeInt(c.node());
                out.writeInt(c.method().arity());
                LambdaCodec.write(out, c.method().function(), codec);
                writeList(out, c.args(), (o, arg) -> writeArg(o, arg, c.method(), codec));
                out.writeInt(c.local());
            }
            case Write w -> {
                out.writeInt(WRITE);
                out.writeInt(w.channel());
                out.writeInt(w.local());
            }
            case AllReduce a -> {
                out.writeInt(ALL_REDUCE);
                out.writeInt(a.collective());
                out.writeInt(a.member());
                out.writeInt(a.inputLocal());
                out.writeInt(a.local());
            }
        }
    }

    private static Operation readOperation(WireIn in, ValueCodec codec, ClassLoader loader) {
        int tag = in.readInt();
        return switch (tag) {
            case READ -> new Read(
                    in.readInt(),
                    in.readInt(),
                    in.readInt());
            case COMPUTE -> new Compute(
                    in.readInt(),
                    readMethod(in, codec, loader),
                    readList(in, i -> readArg(i, codec)),
                    in.readInt());
            case WRITE -> new Write(
                    in.readInt(),
                    in.readInt());
            case ALL_REDUCE -> new AllReduce(
                    in.readInt(),
                    in.readInt(),
                    in.readInt(),
                    in.readInt());
            default -> throw new IllegalArgumentException("corrupt wire message: unknown operation tag " + tag);
        };
    }

    private static MethodRef readMethod(WireIn in, ValueCodec codec, ClassLoader loader) {
        int arity = in.readInt();
        Serializable function = LambdaCodec.read(in, codec, loader);
        try {
            return MethodRef.of(function, arity);
        } catch (RuntimeException e) {
            // TypeNotPresentException when a parameter type is missing here, IllegalArgumentException on a wrong arity.
            throw new IllegalArgumentException("cannot resolve the method " + function.getClass().getName()
                    + " with " + arity + " arguments in this process: " + e.getMessage(), e);
        }
    }

    private static void writeArg(WireOut out, Arg arg, MethodRef method, ValueCodec codec) {
        switch (arg) {
            case LocalArg l -> {
                out.writeInt(LOCAL_ARG);
                out.writeInt(l.local());
            }
            case InputArg i -> {
                out.writeInt(INPUT_ARG);
                out.writeInt(i.local());
                out.writeInt(i.index());
            }
            case ConstantArg k -> {
                out.writeInt(CONSTANT_ARG);
                try {
                    out.writeValue(codec, k.value());
                } catch (IllegalArgumentException e) {
                    throw new IllegalArgumentException("cannot send the plan: a constant argument of "
                            + method.displayName() + " cannot be encoded: " + e.getMessage(), e);
                }
            }
        }
    }

    private static Arg readArg(WireIn in, ValueCodec codec) {
        int tag = in.readInt();
        return switch (tag) {
            case LOCAL_ARG -> new LocalArg(
                    in.readInt());
            case INPUT_ARG -> new InputArg(
                    in.readInt(),
                    in.readInt());
            case CONSTANT_ARG -> new ConstantArg(
                    in.readValue(codec));
            default -> throw new IllegalArgumentException("corrupt wire message: unknown argument tag " + tag);
        };
    }

    private static void writeOutput(WireOut out, OutputRead output) {
        out.writeInt(output.channel());
        out.writeInt(output.reader());
    }

    private static OutputRead readOutput(WireIn in) {
        return new OutputRead(
                in.readInt(),
                in.readInt());
    }

    private static <T> void writeList(WireOut out, List<T> list, BiConsumer<WireOut, T> element) {
        out.writeInt(list.size());
        for (T t : list) {
            element.accept(out, t);
        }
    }

    private static <T> List<T> readList(WireIn in, Function<WireIn, T> element) {
        int size = in.readInt();
        // Every element takes at least a byte: a larger count is corrupt, and must not size an allocation.
        if (size < 0 || size > in.remaining()) {
            throw new IllegalArgumentException("corrupt wire message: a list of " + size + " elements with "
                    + in.remaining() + " bytes left");
        }
        List<T> list = new ArrayList<>(size);
        for (int i = 0; i < size; i++) {
            list.add(element.apply(in));
        }
        return list;
    }

    /** A string its record requires: null (length -1) there is corrupt, and must not become a NullPointerException. */
    private static String readRequiredString(WireIn in, String what) {
        String s = in.readString();
        if (s == null) {
            throw corrupt(what + " is null");
        }
        return s;
    }

    private static void writeEnum(WireOut out, Enum<?> value) {
        out.writeString(value.name());
    }

    private static <E extends Enum<E>> E readEnum(WireIn in, Class<E> type) {
        String name = in.readString();
        for (E e : type.getEnumConstants()) {
            if (e.name().equals(name)) {
                return e;
            }
        }
        throw new IllegalArgumentException("corrupt wire message: " + type.getSimpleName() + " has no constant "
                + name + "; is the sender running another version of Kiln?");
    }

    /** Saturates at about 292 years rather than fail on a timeout nobody will wait for. */
    private static long nanos(Duration d) {
        return d.compareTo(Duration.ofNanos(Long.MAX_VALUE)) >= 0 ? Long.MAX_VALUE : d.toNanos();
    }

    private static void readHeader(WireIn in, int magic, String what) {
        int actual = in.readInt();
        if (actual != magic) {
            throw new IllegalArgumentException("not an encoded " + what + ": it starts with 0x"
                    + Integer.toHexString(actual) + ", not 0x" + Integer.toHexString(magic));
        }
        int version = in.readInt();
        if (version != VERSION) {
            throw new IllegalArgumentException("cannot read an encoded " + what + " of format version " + version
                    + ": this Kiln reads version " + VERSION + "; run the same Kiln build in every process");
        }
    }
}
