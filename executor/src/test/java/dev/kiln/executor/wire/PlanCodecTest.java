package dev.kiln.executor.wire;

import dev.kiln.graph.internal.GraphInternals;
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
import dev.kiln.compiler.ExecutionPlan.Compute;
import dev.kiln.compiler.ExecutionPlan.ConstantArg;
import dev.kiln.compiler.ExecutionPlan.DeviceMemory;
import dev.kiln.compiler.ExecutionPlan.InputArg;
import dev.kiln.compiler.ExecutionPlan.LocalArg;
import dev.kiln.compiler.ExecutionPlan.NcclSchedule;
import dev.kiln.compiler.ExecutionPlan.Operation;
import dev.kiln.compiler.GraphCompiler;
import dev.kiln.compiler.IdleMode;
import dev.kiln.compiler.Topology;
import dev.kiln.compiler.Topology.ActorPlacement;
import dev.kiln.executor.wire.WireActors.Config;
import dev.kiln.executor.wire.WireActors.Over;
import dev.kiln.executor.wire.WireActors.Secret;
import dev.kiln.executor.wire.WireActors.Text;
import dev.kiln.graph.ActorRef;
import dev.kiln.graph.Graph;
import dev.kiln.graph.InputNode;
import dev.kiln.graph.InputNode2;
import dev.kiln.graph.InputNode3;
import dev.kiln.graph.Method1;
import dev.kiln.graph.MethodRef;
import dev.kiln.graph.Node;
import dev.kiln.graph.Transport;
import dev.kiln.tensor.Tensor;
import dev.kiln.transport.ValueCodec;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.stream.Collectors;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertNotSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

@Timeout(60)
class PlanCodecTest {

    private static final Object RUNTIME = new Object();
    private static final ActorPlacement WORKER_1 = new ActorPlacement("localhost", "worker-1");
    private static final ActorPlacement WORKER_2 = new ActorPlacement("localhost", "worker-2");

    private final ActorRef<Text> a = GraphInternals.actorRef(1, "a", Text.class, RUNTIME);
    private final ActorRef<Text> b = GraphInternals.actorRef(2, "b", Text.class, RUNTIME);
    private final ActorRef<Text> c = GraphInternals.actorRef(3, "c", Text.class, RUNTIME);
    private final ActorRef<Over> o = GraphInternals.actorRef(4, "o", Over.class, RUNTIME);
    /** a and o in the driver's JVM, b and c in two workers: in-process and shared-memory channels. */
    private final Topology topology = new Topology(ActorPlacement.IN_DRIVER,
            Map.of(1, ActorPlacement.IN_DRIVER, 2, WORKER_1, 3, WORKER_2, 4, ActorPlacement.IN_DRIVER));
    private final Map<Integer, Class<?>> actorClasses = Map.of(1, Text.class, 2, Text.class, 3, Text.class, 4, Over.class);
    private final ValueCodec codec = new ValueCodec();
    private final List<Tensor> tensors = new ArrayList<>();

    PlanCodecTest() {
        codec.register(Config.class);
    }

    @AfterEach
    void closeTensors() {
        tensors.forEach(Tensor::close);
    }

    private ExecutionPlan compile(Node<?> output) {
        return GraphCompiler.compile(output, topology, CompileOptions.defaults().maxInflight(4));
    }

    /** Encodes and decodes, checks the copy against the original, and returns it. */
    private ExecutionPlan roundTrip(ExecutionPlan plan) throws Exception {
        ExecutionPlan back = PlanCodec.decode(PlanCodec.encode(plan, codec), codec, getClass().getClassLoader());
        assertEquals(comparable(plan), comparable(back));
        List<Compute> computes = computes(plan);
        List<Compute> backComputes = computes(back);
        assertEquals(computes.size(), backComputes.size());
        for (int i = 0; i < computes.size(); i++) {
            Compute original = computes.get(i);
            Compute decoded = backComputes.get(i);
            assertNotSame(original.method().function(), decoded.method().function());
            int actor = plan.nodes().get(original.node()).actor();
            Object expected = invoke(original, actor);
            assertEquals(expected, invoke(decoded, actor), () -> "node " + original.node() + " "
                    + original.method().displayName());
        }
        return back;
    }

    @Test
    void chainAcrossProcesses() throws Exception {
        InputNode<String> in = Graph.input();
        Node<Integer> out = c.bind(Text::length, b.bind(Text::lower, a.bind(Text::upper, in)));
        ExecutionPlan plan = compile(out);
        assertEquals(Set.of(Transport.IN_PROCESS, Transport.SHARED_MEMORY),
                plan.channels().stream().map(ChannelSpec::transport).collect(Collectors.toSet()), plan::toString);
        ExecutionPlan back = roundTrip(plan);
        assertEquals(plan.toString(), back.toString());
        assertEquals(plan.toDot(), back.toDot());
        assertEquals(WORKER_2, back.schedules().get(2).placement());
        Compute upper = computes(back).getFirst();
        assertEquals("Text.upper", upper.method().displayName());
        assertEquals("AB", MethodRef.invoke(upper.method().function(), 1, new Text(), new Object[] {"aB"}));
    }

    @Test
    void fanOutWithTheSameActorTwiceAndSeveralOutputs() throws Exception {
        InputNode<String> in = Graph.input();
        Node<String> x = a.bind(Text::upper, in);
        Node<String> y = b.bind(Text::lower, x);
        Node<String> z = c.bind(Text::concat, x, y);
        Node<String> w = a.bind(Text::lower, x);
        ExecutionPlan plan = compile(Graph.outputs(List.of(y, z, w)));
        assertTrue(plan.multiOutput());
        assertEquals(2, computes(plan).stream().filter(cp -> plan.nodes().get(cp.node()).actor() == 1).count());
        ExecutionPlan back = roundTrip(plan);
        assertEquals(plan.toString(), back.toString());
        assertEquals(3, back.outputs().size());
    }

    /**
     * A GPU plan crosses JVMs whole (it was refused before, even for a GPU actor whose edges are all host edges): device
     * placements with UUIDs, device budgets, the NCCL schedule, communicators, collectives and all-reduce steps.
     */
    @Test
    void gpuPlansCrossJvmsWhole() {
        ExecutionPlan plan = gpuPlan();
        assertTrue(!plan.devices().isEmpty() && plan.nccl().size() > 0 && !plan.collectives().isEmpty(), plan::toString);
        ExecutionPlan back = PlanCodec.decode(PlanCodec.encode(plan, codec), codec, getClass().getClassLoader());
        assertEquals(comparable(plan), comparable(back));
        assertEquals(plan.toString(), back.toString());
        assertEquals("GPU-cccc", back.schedules().stream().filter(s -> s.actor() == 13).findFirst().orElseThrow()
                .placement().deviceUuid());
        assertTrue(back.schedules().stream().flatMap(s -> s.ops().stream())
                .anyMatch(op -> op instanceof ExecutionPlan.AllReduce), back::toString);
    }

    /**
     * What the GPU half of a received plan refers to is checked when it is decoded: an id out of range, a member that
     * is not the step's actor, or a null where a record needs a string is a corrupt message saying what is wrong, not
     * an index or null-pointer exception of the worker that opens the graph.
     */
    @Test
    void corruptGpuReferencesAreRefusedSayingWhatIsWrong() {
        ExecutionPlan plan = gpuPlan();
        ActorSchedule member = plan.schedules().stream()
                .filter(s -> s.ops().stream().anyMatch(op -> op instanceof AllReduce)).findFirst().orElseThrow();
        AllReduce step = (AllReduce) member.ops().stream().filter(op -> op instanceof AllReduce).findFirst()
                .orElseThrow();
        String actor = "actor #" + member.actor() + "'s ALLREDUCE";
        CollectiveSpec collective = plan.collectives().getFirst();
        assertCorrupt(actor + " names collective 7, but the plan has 1 collectives",
                withStep(plan, member, step, new AllReduce(7, step.member(), step.inputLocal(), step.local())));
        assertCorrupt(actor + " names collective -1, but the plan has 1 collectives",
                withStep(plan, member, step, new AllReduce(-1, step.member(), step.inputLocal(), step.local())));
        assertCorrupt(actor + " claims member " + (1 - step.member()) + " of allreduce#0, whose members are actors "
                        + collective.members(),
                withStep(plan, member, step, new AllReduce(0, 1 - step.member(), step.inputLocal(), step.local())));
        assertCorrupt(actor + " claims member 2 of allreduce#0, whose members are actors " + collective.members(),
                withStep(plan, member, step, new AllReduce(0, 2, step.inputLocal(), step.local())));
        assertCorrupt(actor + " writes local " + member.frameSize() + ", but the plan has " + member.frameSize()
                        + " locals",
                withStep(plan, member, step, new AllReduce(0, step.member(), step.inputLocal(), member.frameSize())));
        assertCorrupt(actor + " reads local -3, but the plan has " + member.frameSize() + " locals",
                withStep(plan, member, step, new AllReduce(0, step.member(), -3, step.local())));

        CollectiveSpec badNodes = new CollectiveSpec(0, collective.members(), collective.communicator(),
                List.of(collective.nodes().getFirst(), 9999));
        assertCorrupt("allreduce#0 outputs node 9999, but the plan has " + plan.nodes().size() + " nodes",
                with(plan, plan.schedules(), plan.devices(), plan.nccl(), List.of(badNodes)));

        DeviceMemory d = plan.devices().getFirst();
        DeviceMemory negative = new DeviceMemory(d.host(), -2, d.uuid(), d.freeBytes(), d.budgetBytes(), d.heldBytes(),
                d.ncclBytes());
        List<DeviceMemory> devices = new ArrayList<>(plan.devices());
        devices.set(0, negative);
        assertCorrupt("the plan's GPU " + d.host() + " [" + d.uuid() + "] has device index -2",
                with(plan, plan.schedules(), devices, plan.nccl(), plan.collectives()));

        NcclSchedule nccl = plan.nccl();
        int sender = rankWith(nccl, CommOp.Kind.SEND);
        CommOp send = firstOp(nccl, sender, CommOp.Kind.SEND);
        assertCorrupt("NCCL rank " + sender + "'s SEND names peer rank 99, but the plan has " + nccl.size()
                + " NCCL ranks", withOp(plan, sender, send, new CommOp(CommOp.Kind.SEND, send.channel(), 99)));
        assertCorrupt("NCCL rank " + sender + "'s SEND names channel " + plan.channels().size() + ", but the plan has "
                        + plan.channels().size() + " channels",
                withOp(plan, sender, send, new CommOp(CommOp.Kind.SEND, plan.channels().size(), send.peer())));
        int reducer = rankWith(nccl, CommOp.Kind.ALL_REDUCE);
        CommOp reduce = firstOp(nccl, reducer, CommOp.Kind.ALL_REDUCE);
        int commRanks = plan.communicators().get(collective.communicator()).ranks().size();
        assertCorrupt("NCCL rank " + reducer + "'s ALL_REDUCE is rank " + commRanks + ", but the plan has " + commRanks
                        + " ranks in its communicator",
                withOp(plan, reducer, reduce, new CommOp(CommOp.Kind.ALL_REDUCE, 0, commRanks)));
        assertCorrupt("NCCL rank " + reducer + "'s ALL_REDUCE names collective 1, but the plan has 1 collectives",
                withOp(plan, reducer, reduce, new CommOp(CommOp.Kind.ALL_REDUCE, 1, reduce.peer())));

        ExecutionPlan marked = with(plan, plan.schedules(), List.of(new DeviceMemory("host-of-a-device", d.device(),
                "GPU-of-a-device", d.freeBytes(), d.budgetBytes(), d.heldBytes(), d.ncclBytes())), plan.nccl(),
                plan.collectives());
        byte[] bytes = PlanCodec.encode(marked, codec);
        assertNullRefused("a GPU's host", nullString(bytes, "host-of-a-device"));
        assertNullRefused("a GPU's UUID", nullString(bytes, "GPU-of-a-device"));
        assertNullRefused("an actor's host", nullString(bytes, "host-a"));
        assertNullRefused("an actor's process", nullString(bytes, "worker-1"));
    }

    @Test
    void sizesAWorkerWouldAllocateFromAreBounded() {
        InputNode<String> in = Graph.input();
        ExecutionPlan plan = compile(c.bind(Text::length, b.bind(Text::lower, a.bind(Text::upper, in))));
        ActorSchedule first = plan.schedules().getFirst();
        List<ActorSchedule> schedules = new ArrayList<>(plan.schedules());
        schedules.set(0, new ActorSchedule(first.actor(), first.name(), first.placement(), Integer.MAX_VALUE,
                first.ops()));
        assertCorrupt("actor " + first.actor() + "'s frame of locals 2147483647; 0 to 1048576",
                with(plan, schedules, plan.devices(), plan.nccl(), plan.collectives()));
        ChannelSpec channel = plan.channels().getFirst();
        for (int slots : new int[] {0, Integer.MAX_VALUE}) {
            List<ChannelSpec> channels = new ArrayList<>(plan.channels());
            channels.set(0, new ChannelSpec(channel.id(), channel.node(), channel.writer(), channel.readers(), slots,
                    channel.slotBytes(), channel.transport(), channel.reason()));
            assertCorrupt("channel c" + channel.id() + "'s slots " + slots + "; 1 to 16777216",
                    new ExecutionPlan(plan.inputArity(), plan.maxInflight(), plan.nodes(), channels, plan.schedules(),
                            plan.outputs(), plan.multiOutput(), plan.devices(), plan.nccl(), plan.communicators(),
                            plan.collectives()));
        }
    }

    @Test
    void sharedThreadsCrossAndAForeignCarrierIsRefused() throws Exception {
        InputNode<String> in = Graph.input();
        ExecutionPlan plan = compile(c.bind(Text::length, b.bind(Text::lower, a.bind(Text::upper, in))));
        ActorSchedule first = plan.schedules().getFirst(); // a, in the driver's JVM
        ActorSchedule second = plan.schedules().get(1); // b, in worker-1
        ActorSchedule third = plan.schedules().get(2); // c, in worker-2
        List<ActorSchedule> schedules = new ArrayList<>(plan.schedules());
        schedules.set(1, second.onThreadOf(first.actor()));
        assertCorrupt("actor #" + second.actor() + " is to run on the thread of actor #" + first.actor()
                + ", which is not an actor of the plan in process worker-1 running on a thread of its own",
                with(plan, schedules, plan.devices(), plan.nccl(), plan.collectives()));
        schedules.set(1, second.onThreadOf(999));
        assertCorrupt("actor #" + second.actor() + " is to run on the thread of actor #999, which is not an actor of"
                + " the plan in process worker-1 running on a thread of its own",
                with(plan, schedules, plan.devices(), plan.nccl(), plan.collectives()));

        // A GPU-free, in-process actor may not run on the thread of one that reads from another process.
        schedules.set(1, second);
        schedules.set(2, new ActorSchedule(third.actor(), third.name(), second.placement(), third.frameSize(),
                third.ops()).onThreadOf(second.actor()));
        assertCorrupt("actor #" + third.actor() + " is to run on the thread of actor #" + second.actor() + ", but actor #"
                + third.actor() + " may not share a thread (a GPU, an all-reduce or a channel to another process)",
                with(plan, schedules, plan.devices(), plan.nccl(), plan.collectives()));
    }

    @Test
    void actorsOfOneWorkerSharingAThreadComeBackSharingIt() throws Exception {
        // a in the driver, then four actors in worker-1: the two in the middle have in-process channels only.
        List<ActorRef<Text>> w = new ArrayList<>();
        Map<Integer, ActorPlacement> placements = new java.util.HashMap<>(Map.of(1, ActorPlacement.IN_DRIVER));
        for (int id = 11; id <= 14; id++) {
            w.add(GraphInternals.actorRef(id, "w" + id, Text.class, RUNTIME));
            placements.put(id, WORKER_1);
        }
        InputNode<String> in = Graph.input();
        Node<String> x = a.bind(Text::upper, in);
        for (ActorRef<Text> r : w) {
            x = r.bind(Text::lower, x);
        }
        ExecutionPlan plan = GraphCompiler.compile(x, new Topology(ActorPlacement.IN_DRIVER, placements),
                CompileOptions.defaults().maxInflight(4).actorThreads(1));
        assertEquals(List.of(12), plan.schedules().stream().filter(ActorSchedule::sharesThread)
                .map(ActorSchedule::carrier).distinct().toList(), plan::toString);
        ExecutionPlan back = PlanCodec.decode(PlanCodec.encode(plan, codec), codec, getClass().getClassLoader());
        assertEquals(plan.toString(), back.toString());
        ActorSchedule guest = back.schedules().stream().filter(ActorSchedule::sharesThread).findFirst().orElseThrow();
        assertEquals(13, guest.actor());
        // ... and a guest of a carrier that shares itself is refused.
        List<ActorSchedule> schedules = new ArrayList<>(plan.schedules());
        int at = schedules.indexOf(plan.schedules().stream().filter(s -> s.actor() == 12).findFirst().orElseThrow());
        schedules.set(at, schedules.get(at).onThreadOf(13));
        assertCorrupt("actor #12 is to run on the thread of actor #13, which is not an actor of the plan in process "
                + "worker-1 running on a thread of its own",
                with(plan, schedules, plan.devices(), plan.nccl(), plan.collectives()));
    }

    private void assertNullRefused(String what, byte[] bytes) {
        assertEquals("corrupt wire message: " + what + " is null", assertThrows(IllegalArgumentException.class,
                () -> PlanCodec.decode(bytes, codec, getClass().getClassLoader())).getMessage());
    }

    private void assertCorrupt(String why, ExecutionPlan bad) {
        byte[] bytes = PlanCodec.encode(bad, codec);
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> PlanCodec.decode(bytes, codec, getClass().getClassLoader()));
        assertEquals("corrupt wire message: " + why, e.getMessage());
    }

    private static ExecutionPlan with(ExecutionPlan p, List<ActorSchedule> schedules, List<DeviceMemory> devices,
                                      NcclSchedule nccl, List<CollectiveSpec> collectives) {
        return new ExecutionPlan(p.inputArity(), p.maxInflight(), p.nodes(), p.channels(), schedules, p.outputs(),
                p.multiOutput(), devices, nccl, p.communicators(), collectives);
    }

    /** The plan with one operation of one schedule replaced. */
    private static ExecutionPlan withStep(ExecutionPlan p, ActorSchedule schedule, Operation old,
                                          Operation replacement) {
        List<ActorSchedule> schedules = p.schedules().stream().map(s -> s != schedule ? s
                : new ActorSchedule(s.actor(), s.name(), s.placement(), s.frameSize(),
                s.ops().stream().map(op -> op == old ? replacement : op).toList())).toList();
        return with(p, schedules, p.devices(), p.nccl(), p.collectives());
    }

    /** The plan with one NCCL operation of one rank replaced. */
    private static ExecutionPlan withOp(ExecutionPlan p, int rank, CommOp old, CommOp replacement) {
        List<List<CommGroup>> groups = new ArrayList<>(p.nccl().groups());
        groups.set(rank, groups.get(rank).stream().map(g -> new CommGroup(g.ops().stream()
                .map(op -> op == old ? replacement : op).toList())).toList());
        return with(p, p.schedules(), p.devices(), new NcclSchedule(p.nccl().ranks(), groups), p.collectives());
    }

    private static int rankWith(NcclSchedule nccl, CommOp.Kind kind) {
        for (int r = 0; r < nccl.size(); r++) {
            if (nccl.groups().get(r).stream().flatMap(g -> g.ops().stream()).anyMatch(op -> op.kind() == kind)) {
                return r;
            }
        }
        throw new AssertionError("no rank issues " + kind);
    }

    private static CommOp firstOp(NcclSchedule nccl, int rank, CommOp.Kind kind) {
        return nccl.groups().get(rank).stream().flatMap(g -> g.ops().stream()).filter(op -> op.kind() == kind)
                .findFirst().orElseThrow();
    }

    /** The message with the first string equal to {@code s} written as a null string (length -1) instead. */
    private static byte[] nullString(byte[] bytes, String s) {
        byte[] text = s.getBytes(StandardCharsets.UTF_8);
        int at = -1;
        for (int i = 4; i + text.length <= bytes.length && at < 0; i++) {
            if (Arrays.equals(bytes, i, i + text.length, text, 0, text.length)
                    && ByteBuffer.wrap(bytes, i - 4, 4).order(ByteOrder.LITTLE_ENDIAN).getInt() == text.length) {
                at = i - 4;
            }
        }
        assertTrue(at >= 0, "the message holds the string " + s);
        ByteBuffer out = ByteBuffer.allocate(bytes.length - text.length).order(ByteOrder.LITTLE_ENDIAN);
        out.put(bytes, 0, at).putInt(-1).put(bytes, at + 4 + text.length, bytes.length - at - 4 - text.length);
        return out.array();
    }

    /**
     * Three GPU actors on two hosts and one without a GPU: a direct GPU edge, an all-reduce, host edges; devices,
     * NCCL schedule, communicators and collectives.
     */
    private ExecutionPlan gpuPlan() {
        ActorRef<WireActors.Dev> g0 = GraphInternals.actorRef(11, "g0", WireActors.Dev.class, RUNTIME);
        ActorRef<WireActors.Dev> g1 = GraphInternals.actorRef(12, "g1", WireActors.Dev.class, RUNTIME);
        ActorRef<WireActors.Dev> g2 = GraphInternals.actorRef(13, "g2", WireActors.Dev.class, RUNTIME);
        ActorRef<WireActors.Dev> cpu = GraphInternals.actorRef(14, "cpu", WireActors.Dev.class, RUNTIME);
        long free = 8L << 30;
        Topology gpus = new Topology(ActorPlacement.IN_DRIVER, Map.of(
                11, new ActorPlacement("host-a", "worker-1", 0, "GPU-aaaa", free),
                12, new ActorPlacement("host-a", "worker-2", 1, "GPU-bbbb", free),
                13, new ActorPlacement("host-b", "worker-3", 0, "GPU-cccc", free),
                14, new ActorPlacement("host-a", "worker-2")));
        InputNode<String> in = Graph.input();
        Node<dev.kiln.tensor.DeviceTensor> x = g0.bind(WireActors.Dev::make, in);
        Node<dev.kiln.tensor.DeviceTensor> y = g1.bind(WireActors.Dev::pass, x);
        Node<dev.kiln.tensor.DeviceTensor> z = g2.bind(WireActors.Dev::pass, x);
        List<Node<dev.kiln.tensor.DeviceTensor>> sums = Graph.allReduce(List.of(y, z));
        Node<String> shown = cpu.bind(WireActors.Dev::show, Graph.hostCopy(sums.get(0))); // cpu has no GPU
        Node<String> hostOnly = g0.bind(WireActors.Dev::label, in);
        return GraphCompiler.compile(Graph.outputs(List.of(shown, g2.bind(WireActors.Dev::show, sums.get(1)), hostOnly)),
                gpus, CompileOptions.defaults().maxInflight(4).bufferBytes(1 << 16));
    }

    @Test
    void threeArgumentInput() throws Exception {
        InputNode3<String, String, String> in = Graph.input3();
        ExecutionPlan plan = compile(b.bind(Text::join3, in.first(), in.second(), in.third()));
        assertEquals(3, plan.inputArity());
        ExecutionPlan back = roundTrip(plan);
        assertEquals(plan.toString(), back.toString());
        Compute join = computes(back).getFirst();
        assertEquals(List.of(new InputArg(0, 0), new InputArg(0, 1), new InputArg(0, 2)), join.args());
    }

    @Test
    void constantsOfNativeAndRegisteredTypes() throws Exception {
        InputNode<String> in = Graph.input();
        Tensor tensor = track(Tensor.of(new float[] {1.5f, -2f, 3f, 0f}, 2, 2));
        Node<String> described = a.bind(Text::describe, in, Graph.constant(7L), Graph.constant(2.5),
                Graph.constant(true), Graph.constant('c'), Graph.constant(new byte[] {1, -2}), Graph.constant(tensor),
                Graph.constant(null));
        Node<String> repeated = b.bind(Text::repeat, described, Graph.constant(2));
        Node<String> concat = c.bind(Text::concat, repeated, Graph.constant("const ü"));
        Method1<Over, Object, String> fmt = Over::fmt;
        Node<String> config = o.bind(fmt, Graph.constant(new Config(5, "cfg")));
        Node<String> array = o.bind(fmt,
                Graph.constant(new Object[] {(short) 1, (byte) 2, 3f, "x", new Object[] {tensor}}));
        ExecutionPlan plan = compile(Graph.outputs(List.of(concat, config, array)));
        ExecutionPlan back = roundTrip(plan);
        List<Object> constants = computes(back).stream().flatMap(cp -> cp.args().stream())
                .filter(arg -> arg instanceof ConstantArg).map(arg -> ((ConstantArg) arg).value()).toList();
        assertEquals(11, constants.size(), constants::toString);
        assertTrue(constants.contains(new Config(5, "cfg")), constants::toString);
        Tensor decoded = only(constants, Tensor.class);
        Object[] decodedArray = only(constants, Object[].class);
        Tensor nested = (Tensor) ((Object[]) decodedArray[4])[0];
        try (decoded; nested) {
            assertTrue(decoded.ownsMemory() && tensor.contentEquals(decoded), decoded::toString);
            assertNotSame(tensor, decoded);
            assertTrue(nested.ownsMemory() && tensor.contentEquals(nested), nested::toString);
        }
    }

    private static <T> T only(List<Object> values, Class<T> type) {
        List<T> found = values.stream().filter(type::isInstance).map(type::cast).toList();
        assertEquals(1, found.size(), () -> type + " in " + values);
        return found.getFirst();
    }

    @Test
    void lambdasWithCapturesInThePlan() throws Exception {
        InputNode<String> in = Graph.input();
        int times = 3;
        Tensor weights = track(Tensor.of(new int[] {4, 5}));
        Config config = new Config(2, "c");
        Node<String> x = a.bind((Text t, String s) -> t.repeat(s, times) + weights.getInt(1), in);
        Node<String> y = b.bind((Text t, String s) -> config.name() + t.repeat(s, config.n()), x);
        ExecutionPlan back = roundTrip(compile(y));
        List<Compute> computes = computes(back);
        assertEquals("ababab5", MethodRef.invoke(computes.get(0).method().function(), 1, new Text(), new Object[] {"ab"}));
        assertEquals("cxx", MethodRef.invoke(computes.get(1).method().function(), 1, new Text(), new Object[] {"x"}));
    }

    @Test
    void unregisteredConstantFailsAtEncodeSayingHowToRegister() {
        Method1<Over, Object, String> fmt = Over::fmt;
        ExecutionPlan plan = compile(o.bind(fmt, Graph.constant(new Secret(1))));
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> PlanCodec.encode(plan, codec));
        assertEquals("cannot send the plan: a constant argument of Over.fmt cannot be encoded: cannot send a value of"
                + " class " + Secret.class.getName() + " between processes: it is not registered; register it in every"
                + " process of the graph with codec.register(Secret.class)", e.getMessage());
    }

    @Test
    void unregisteredCaptureFailsAtEncodeNamingTheLambda() {
        Secret secret = new Secret(2);
        ExecutionPlan plan = compile(a.bind((Text t, String s) -> s + secret.x(), Graph.<String>input()));
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> PlanCodec.encode(plan, codec));
        assertTrue(e.getMessage().startsWith("cannot send lambda " + PlanCodecTest.class.getName() + ".lambda$"),
                e.getMessage());
        assertTrue(e.getMessage().contains("codec.register(Secret.class). Fix: register that class"), e.getMessage());
    }

    @Test
    void readerWithoutTheRegistrationSaysHowToRegister() {
        Method1<Over, Object, String> fmt = Over::fmt;
        byte[] bytes = PlanCodec.encode(compile(o.bind(fmt, Graph.constant(new Config(1, "x")))), codec);
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> PlanCodec.decode(bytes, new ValueCodec(), getClass().getClassLoader()));
        assertTrue(e.getMessage().contains("codec.register"), e.getMessage());
    }

    @Test
    void truncatedPlanIsAnIllegalArgumentAtEveryLength() {
        for (ExecutionPlan plan : List.of(sampleWithEverything(), gpuPlan())) {
            byte[] bytes = PlanCodec.encode(plan, codec);
            for (int length = 0; length < bytes.length; length++) {
                byte[] prefix = Arrays.copyOf(bytes, length);
                IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                        () -> PlanCodec.decode(prefix, codec, getClass().getClassLoader()), "truncated to " + length);
                assertTrue(e.getMessage().startsWith("truncated wire message")
                        || e.getMessage().startsWith("corrupt wire"), e.getMessage());
            }
        }
    }

    @Test
    void corruptPlanIsAnIllegalArgumentOrADifferentPlan() {
        for (ExecutionPlan plan : List.of(sampleWithEverything(), gpuPlan())) {
            byte[] bytes = PlanCodec.encode(plan, codec);
            int refused = 0;
            for (int i = 0; i < bytes.length; i++) {
                for (int mask : new int[] {0x01, 0x80, 0xFF}) {
                    byte[] flipped = bytes.clone();
                    flipped[i] ^= (byte) mask;
                    try {
                        PlanCodec.decode(flipped, codec, getClass().getClassLoader());
                    } catch (IllegalArgumentException e) {
                        refused++;
                    }
                }
            }
            assertTrue(refused > bytes.length, "most flips are caught: " + refused);
        }
    }

    @Test
    void foreignOrTrailingBytesAreRefused() {
        byte[] plan = PlanCodec.encode(sampleWithEverything(), codec);
        byte[] options = PlanCodec.encode(CompileOptions.defaults());
        ClassLoader loader = getClass().getClassLoader();
        assertEquals("not an encoded ExecutionPlan: it starts with 0x54504f4b, not 0x4e4c504b",
                assertThrows(IllegalArgumentException.class, () -> PlanCodec.decode(options, codec, loader)).getMessage());
        assertEquals("not an encoded CompileOptions: it starts with 0x4e4c504b, not 0x54504f4b",
                assertThrows(IllegalArgumentException.class, () -> PlanCodec.decodeOptions(plan)).getMessage());
        byte[] longer = Arrays.copyOf(plan, plan.length + 3);
        assertEquals("corrupt wire message: 3 bytes left over after the end at offset " + plan.length,
                assertThrows(IllegalArgumentException.class, () -> PlanCodec.decode(longer, codec, loader)).getMessage());
        byte[] nextVersion = plan.clone();
        nextVersion[4]++;
        assertEquals("cannot read an encoded ExecutionPlan of format version 5: this Kiln reads version 4; run the"
                + " same Kiln build in every process",
                assertThrows(IllegalArgumentException.class, () -> PlanCodec.decode(nextVersion, codec, loader))
                        .getMessage());
    }

    @Test
    void planAndOptionsShareOneMessage() throws Exception {
        ExecutionPlan plan = compile(a.bind(Text::upper, Graph.<String>input()));
        CompileOptions options = CompileOptions.defaults().idle(IdleMode.SPIN);
        WireOut out = new WireOut();
        PlanCodec.write(out, options);
        PlanCodec.write(out, plan, codec);
        WireIn in = new WireIn(out.toByteArray());
        assertEquals(options, PlanCodec.readOptions(in));
        assertEquals(comparable(plan), comparable(PlanCodec.readPlan(in, codec, getClass().getClassLoader())));
        in.expectEnd();
    }

    @Test
    void optionsRoundTripEveryComponent() {
        CompileOptions defaults = CompileOptions.defaults();
        assertEquals(defaults, PlanCodec.decodeOptions(PlanCodec.encode(defaults)));
        CompileOptions custom = defaults.maxInflight(3).bufferBytes(12_345).submitTimeout(Duration.ofNanos(1))
                .getTimeout(Duration.ofMillis(2)).teardownTimeout(Duration.ofMinutes(3)).idle(IdleMode.BLOCKING)
                .slotGrowth(false).gpuMemoryFraction(0.5).overlapGpuCommunication(true).checkViews(true).actorThreads(3);
        for (var component : CompileOptions.class.getRecordComponents()) {
            if (component.getName().equals("onActorDeath") || component.getName().equals("statistics")) {
                continue; // the driver alone restarts graphs and keeps statistics: workers are not sent them (below)
            }
            try {
                assertNotEquals(component.getAccessor().invoke(defaults), component.getAccessor().invoke(custom),
                        component.getName() + " differs from the default, so a dropped field shows");
            } catch (ReflectiveOperationException e) {
                throw new AssertionError(e);
            }
        }
        assertEquals(custom, PlanCodec.decodeOptions(PlanCodec.encode(custom)));
        CompileOptions restarting = custom.onActorDeath(ActorDeathPolicy.RESTART.limit(7, Duration.ofSeconds(9)));
        assertEquals(custom.onActorDeath(ActorDeathPolicy.RESTART), PlanCodec.decodeOptions(PlanCodec.encode(restarting)),
                "of the death policy a worker reads only whether the graph restarts (it holds the actors alone then):"
                        + " only the driver restarts");
        assertEquals(custom, PlanCodec.decodeOptions(PlanCodec.encode(custom.statistics(false))),
                "nor the statistics switch: statistics are kept in the driver's JVM");
        CompileOptions ownThreads = defaults.actorThreads(CompileOptions.THREAD_PER_ACTOR);
        assertEquals(ownThreads, PlanCodec.decodeOptions(PlanCodec.encode(ownThreads)));
        CompileOptions forever = defaults.getTimeout(Duration.ofDays(365L * 1000));
        assertEquals(Duration.ofNanos(Long.MAX_VALUE), PlanCodec.decodeOptions(PlanCodec.encode(forever)).getTimeout());
    }

    @Test
    void corruptOptionsAreAnIllegalArgument() {
        byte[] bytes = PlanCodec.encode(CompileOptions.defaults());
        for (int length = 0; length < bytes.length; length++) {
            byte[] prefix = Arrays.copyOf(bytes, length);
            assertThrows(IllegalArgumentException.class, () -> PlanCodec.decodeOptions(prefix));
        }
        byte[] zeroInflight = bytes.clone();
        Arrays.fill(zeroInflight, 8, 12, (byte) 0);
        assertEquals("maxInflight must be >= 1, got 0",
                assertThrows(IllegalArgumentException.class, () -> PlanCodec.decodeOptions(zeroInflight)).getMessage());
        WireOut out = new WireOut();
        out.writeInt(0x54504F4B);
        out.writeInt(4);
        out.writeInt(1);
        out.writeLong(1);
        out.writeLong(1);
        out.writeLong(1);
        out.writeLong(1);
        out.writeString("SLEEPY");
        out.writeBoolean(true);
        assertEquals("corrupt wire message: IdleMode has no constant SLEEPY; is the sender running another version of"
                + " Kiln?", assertThrows(IllegalArgumentException.class, () -> PlanCodec.decodeOptions(out.toByteArray()))
                .getMessage());
    }

    /** A plan with every kind of operation, argument, transport and a captured value. */
    private ExecutionPlan sampleWithEverything() {
        InputNode2<String, String> in = Graph.input2();
        int times = 2;
        Node<String> x = a.bind((Text t, String s) -> t.repeat(s, times), in.first());
        Node<String> y = b.bind(Text::concat, x, in.second());
        Node<String> z = c.bind(Text::describe, y, Graph.constant(1L), Graph.constant(2.5), Graph.constant("s"),
                Graph.constant('c'), Graph.constant(new byte[] {3}), Graph.constant(null), Graph.constant(new Object[] {1}));
        return compile(Graph.outputs(List.of(z, x)));
    }

    private Tensor track(Tensor t) {
        tensors.add(t);
        return t;
    }

    private static List<Compute> computes(ExecutionPlan plan) {
        return plan.schedules().stream().flatMap(s -> s.ops().stream()).filter(op -> op instanceof Compute)
                .map(op -> (Compute) op).toList();
    }

    /** Calls a compute on a new actor: arguments from the input or locals get sample values, constants their own. */
    private Object invoke(Compute compute, int actor) throws Exception {
        MethodRef m = compute.method();
        Object[] args = new Object[m.arity()];
        for (int i = 0; i < args.length; i++) {
            Class<?> type = m.parameterTypes().get(i);
            args[i] = switch (compute.args().get(i)) {
                case ConstantArg k -> k.value();
                case LocalArg l -> type == Integer.class ? 2 : "sample" + l.local();
                case InputArg in -> type == Integer.class ? 3 : "input" + in.index();
            };
        }
        Object instance = actorClasses.get(actor).getDeclaredConstructor().newInstance();
        return WireActors.describe(MethodRef.invoke(m.function(), m.arity(), instance, args));
    }

    /**
     * The plan with what has no value equality made comparable: a method without its function object (its
     * names and types stay), a constant as its description.
     */
    private static ExecutionPlan comparable(ExecutionPlan plan) {
        List<ActorSchedule> schedules = plan.schedules().stream().map(s -> new ActorSchedule(s.actor(), s.name(),
                s.placement(), s.frameSize(), s.ops().stream().map(PlanCodecTest::comparable).toList())).toList();
        return new ExecutionPlan(plan.inputArity(), plan.maxInflight(), plan.nodes(), plan.channels(), schedules,
                plan.outputs(), plan.multiOutput(), plan.devices(), plan.nccl(), plan.communicators(), plan.collectives());
    }

    private static Operation comparable(Operation op) {
        if (!(op instanceof Compute c)) {
            return op;
        }
        MethodRef m = c.method();
        List<Arg> args = c.args().stream().map(arg -> arg instanceof ConstantArg k
                ? new ConstantArg(WireActors.describe(k.value())) : arg).toList();
        return new Compute(c.node(), new MethodRef(null, m.arity(), m.owner(), m.name(), m.parameterTypes(),
                m.primitive(), m.returnType()), args, c.local());
    }
}
