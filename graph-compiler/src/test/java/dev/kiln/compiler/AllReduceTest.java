package dev.kiln.compiler;

import dev.kiln.compiler.ExecutionPlan.ActorSchedule;
import dev.kiln.compiler.ExecutionPlan.AllReduce;
import dev.kiln.compiler.ExecutionPlan.CollectiveSpec;
import dev.kiln.compiler.ExecutionPlan.CommGroup;
import dev.kiln.compiler.ExecutionPlan.CommunicatorSpec;
import dev.kiln.compiler.ExecutionPlan.Compute;
import dev.kiln.compiler.ExecutionPlan.DeviceMemory;
import dev.kiln.compiler.ExecutionPlan.NcclSchedule;
import dev.kiln.compiler.ExecutionPlan.Operation;
import dev.kiln.compiler.ExecutionPlan.Read;
import dev.kiln.compiler.ExecutionPlan.Write;
import dev.kiln.compiler.GpuActors.Gpu;
import dev.kiln.compiler.Topology.ActorPlacement;
import dev.kiln.graph.ActorRef;
import dev.kiln.graph.Graph;
import dev.kiln.graph.InputNode;
import dev.kiln.graph.InputNode2;
import dev.kiln.graph.Node;
import dev.kiln.graph.Transport;
import dev.kiln.tensor.DeviceTensor;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

import static dev.kiln.compiler.GpuActors.GIB;
import static dev.kiln.compiler.GpuActors.MIB;
import static dev.kiln.compiler.GpuActors.gpu;
import static dev.kiln.compiler.GpuActors.gpuActor;
import static dev.kiln.compiler.GpuActors.places;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** All-reduce nodes: validation, schedules, communicators, device memory, the plan as text and DOT. */
@Timeout(30)
class AllReduceTest {

    private static final CompileOptions TWO_SLOTS = CompileOptions.defaults().maxInflight(2);
    private static final long RANK = CompileOptions.NCCL_RANK_BYTES;
    private static final long PEER = CompileOptions.NCCL_PEER_BYTES;

    private final ActorRef<Gpu> a = gpuActor(1, "a");
    private final ActorRef<Gpu> b = gpuActor(2, "b");
    private final ActorRef<Gpu> c = gpuActor(3, "c");
    private final ActorRef<Gpu> d = gpuActor(4, "d");

    private final Topology twoGpus = places().put(a, gpu(0)).put(b, gpu(1)).topology();

    private static List<String> ops(ExecutionPlan plan, String actor) {
        for (ActorSchedule s : plan.schedules()) {
            if (s.name().equals(actor)) {
                return s.ops().stream().map(AllReduceTest::describe).toList();
            }
        }
        throw new AssertionError("no actor " + actor);
    }

    private static String describe(Operation op) {
        return switch (op) {
            case Read r -> "R c" + r.channel();
            case Write w -> "W c" + w.channel();
            case Compute x -> "C " + x.method().name();
            case AllReduce r -> "A #" + r.collective();
        };
    }

    private static List<String> groups(ExecutionPlan plan, int rank) {
        return plan.nccl().groups().get(rank).stream().map(CommGroup::toString).toList();
    }

    private static GraphCompileException rejects(Node<?> out, Topology topology, String message) {
        GraphCompileException e = assertThrows(GraphCompileException.class,
                () -> GraphCompiler.compile(out, topology, CompileOptions.defaults()));
        assertEquals(message, e.getMessage());
        return e;
    }

    // ---- plans ----

    /** a.load -> b.f by NCCL; both all-reduced; each member makes a host string of its sum. */
    private ExecutionPlan twoMembers() {
        InputNode<String> in = Graph.input();
        Node<DeviceTensor> x = a.bind(Gpu::load, in);
        Node<DeviceTensor> y = b.bind(Gpu::f, x);
        List<Node<DeviceTensor>> sums = Graph.allReduce(List.of(x, y));
        return GraphCompiler.compile(Graph.outputs(a.bind(Gpu::toHost, sums.get(0)), b.bind(Gpu::toHost, sums.get(1))),
                twoGpus, TWO_SLOTS);
    }

    @Test
    void twoMembersReuseThePointToPointCommunicator() {
        ExecutionPlan plan = twoMembers();
        assertEquals("""
                ExecutionPlan: 2 actors, 4 channels, 1 input arg, 2 outputs (list), maxInflight 2
                channels:
                  c0 input: driver -> [a], IN_PROCESS (AUTO: writer and readers in one JVM), 2 slots
                  c1 a.load: a -> [b], NCCL (AUTO: b on another GPU (localhost/driver/gpu1)), 2 slots
                  c2 a.toHost: a -> [driver], IN_PROCESS (AUTO: writer and readers in one JVM), 2 slots
                  c3 b.toHost: b -> [driver], IN_PROCESS (AUTO: writer and readers in one JVM), 2 slots
                actor a @ localhost/driver/gpu0:
                  READ    c0 -> l0
                  COMPUTE Gpu.load(l0) -> l1
                  WRITE   l1 -> c1
                  ALLREDUCE #0(l1) -> l2
                  COMPUTE Gpu.toHost(l2) -> l3
                  WRITE   l3 -> c2
                actor b @ localhost/driver/gpu1:
                  READ    c1 -> l0
                  COMPUTE Gpu.f(l0) -> l1
                  ALLREDUCE #0(l1) -> l2
                  COMPUTE Gpu.toHost(l2) -> l3
                  WRITE   l3 -> c3
                driver: WRITE c0, READ c2, c3
                devices:
                  localhost/gpu0: holds 84934656 B (NCCL 83886080 B), budget 15461882265 B of 17179869184 B free
                  localhost/gpu1: holds 87031808 B (NCCL 83886080 B), budget 15461882265 B of 17179869184 B free
                collectives:
                  allreduce#0 over comm0 [r0 a, r1 b]: sums a.load, b.f
                communicators:
                  comm0: r0 a, r1 b (point-to-point, allreduce#0)
                nccl: 2 ranks
                  r0 a: SEND c1 -> r1; ALL_REDUCE #0 (comm rank 0)
                  r1 b: RECV c1 <- r0; ALL_REDUCE #0 (comm rank 1)
                """, plan.toString());
        assertEquals(List.of(new CommunicatorSpec(0, List.of(a.id(), b.id()))), plan.communicators());
        assertEquals(List.of(new CollectiveSpec(0, List.of(a.id(), b.id()), 0, List.of(3, 4))), plan.collectives());
        assertEquals("allreduce#0[0]", plan.nodes().get(3).label());
        assertEquals(List.of(1), plan.nodes().get(3).upstream(), "an output's upstream is its member's input");
        assertEquals(a.id(), plan.nodes().get(3).actor());
        assertEquals(b.id(), plan.nodes().get(4).actor());
        // gpu0: one output buffer, one rank talking to b; gpu1: two receive slots as well. One communicator each.
        assertEquals(MIB + RANK + PEER, plan.devices().get(0).heldBytes());
        assertEquals(2 * MIB + MIB + RANK + PEER, plan.devices().get(1).heldBytes());
        assertEquals(5 * (1 + 1), ScheduleChecker.simulate(plan, 5), "a transfer and an all-reduce per execution");
        assertEquals(3 * 2, ScheduleChecker.simulate(plan.nccl(), 3));
    }

    @Test
    void collectivesAsDot() {
        String dot = twoMembers().toDot();
        assertTrue(dot.contains("""
                  subgraph cluster_a1 {
                    label="a (gpu0)";
                    n1 [label="a.load"];
                    n3 [label="allreduce#0[0]", shape=hexagon];
                    n5 [label="a.toHost"];
                  }
                """), dot);
        assertTrue(dot.contains("""
                  allreduce0 [label="allreduce#0 comm0", shape=doubleoctagon];
                  allreduce0 -> n3 [style=dashed];
                  allreduce0 -> n4 [style=dashed];
                """), dot);
        assertTrue(dot.contains("  n1 -> n3 [label=\"local\"];\n"), dot);
        assertTrue(dot.contains("  n2 -> n4 [label=\"local\"];\n"), dot);
    }

    @Test
    void threeMembersGetTheirOwnCommunicator() {
        // The point-to-point ranks are a and b; the all-reduce adds c (another JVM), so it needs a communicator of its own.
        InputNode<String> in = Graph.input();
        Node<DeviceTensor> x = a.bind(Gpu::load, in);
        Node<DeviceTensor> y = b.bind(Gpu::f, x);
        Node<DeviceTensor> z = c.bind(Gpu::load, in);
        List<Node<DeviceTensor>> sums = Graph.allReduce(List.of(x, y, z));
        Node<?> out = Graph.outputs(List.of(c.bind(Gpu::add, sums.get(2), sums.get(0))));
        ExecutionPlan plan = GraphCompiler.compile(out, places().put(a, gpu(0)).put(b, gpu(1)).put(c, gpu("w1", 2, GIB))
                .topology(), TWO_SLOTS);
        String text = plan.toString();
        assertTrue(text.contains("""
                collectives:
                  allreduce#0 over comm1 [r0 a, r1 b, r2 c]: sums a.load, b.f, c.load
                communicators:
                  comm0: r0 a, r1 b (point-to-point)
                  comm1: r0 a, r1 b, r2 c (allreduce#0)
                nccl: 3 ranks
                  r0 a: SEND c1 -> r1; ALL_REDUCE #0 (comm rank 0)
                  r1 b: RECV c1 <- r0; ALL_REDUCE #0 (comm rank 1)
                  r2 c: ALL_REDUCE #0 (comm rank 2)
                """), text);
        assertEquals(List.of(new CommunicatorSpec(0, List.of(a.id(), b.id())),
                new CommunicatorSpec(1, List.of(a.id(), b.id(), c.id()))), plan.communicators());
        assertEquals(1, plan.collectives().getFirst().communicator());
        assertEquals(List.of("R c0", "C load", "A #0", "R c2", "C add", "W c3"), ops(plan, "c"));
        assertEquals(List.of("R c1", "C f", "A #0"), ops(plan, "b"), "b's sum is read by nobody: it stays on b");
        // a and b: a rank in comm0 (one peer) and in comm1 (two ring neighbours); c: comm1 only. Plus the output
        // buffer each, b's receive slots, c's CUDA IPC slots for a's sum.
        List<DeviceMemory> devices = plan.devices();
        assertEquals(List.of(MIB + 2 * RANK + 3 * PEER, 2 * MIB + MIB + 2 * RANK + 3 * PEER, 2 * MIB + MIB + RANK + 2 * PEER),
                devices.stream().map(DeviceMemory::heldBytes).toList());
        assertEquals(List.of(2 * RANK + 3 * PEER, 2 * RANK + 3 * PEER, RANK + 2 * PEER),
                devices.stream().map(DeviceMemory::ncclBytes).toList());
        for (int n = 1; n <= 4; n++) {
            assertEquals(n * 2L, ScheduleChecker.simulate(plan, n), "executions pipelined over 2 slots: " + n);
        }
    }

    @Test
    void fourMembersAcrossJvmsAndHostsShareOneCommunicatorInAnotherOrder() {
        // Two all-reduces over the same four actors, the second in reverse member order and fed by the first.
        InputNode<String> in = Graph.input();
        List<Node<DeviceTensor>> first = Graph.allReduce(List.of(a.bind(Gpu::load, in), b.bind(Gpu::load, in),
                c.bind(Gpu::load, in), d.bind(Gpu::load, in)));
        List<Node<DeviceTensor>> second = Graph.allReduce(List.of(d.bind(Gpu::f, first.get(3)),
                c.bind(Gpu::f, first.get(2)), b.bind(Gpu::f, first.get(1)), a.bind(Gpu::f, first.get(0))));
        Topology topology = places().put(a, gpu(0)).put(b, gpu("w1", 1, GIB)).put(c, gpu("w2", 0, "GPU-C", GIB))
                .put(d, new ActorPlacement("host2", "w", 0, GIB)).topology();
        ExecutionPlan plan = GraphCompiler.compile(Graph.outputs(second.get(3), second.get(1)), topology, TWO_SLOTS);
        String text = plan.toString();
        assertTrue(text.contains("""
                collectives:
                  allreduce#0 over comm0 [r0 a, r1 b, r2 c, r3 d]: sums a.load, b.load, c.load, d.load
                  allreduce#1 over comm0 [r3 d, r2 c, r1 b, r0 a]: sums d.f, c.f, b.f, a.f
                communicators:
                  comm0: r0 a, r1 b, r2 c, r3 d (allreduce#0, allreduce#1)
                """), text);
        assertEquals(new CollectiveSpec(1, List.of(d.id(), c.id(), b.id(), a.id()), 0,
                plan.collectives().get(1).nodes()), plan.collectives().get(1));
        assertEquals(List.of("ALL_REDUCE #0 (comm rank 3)", "ALL_REDUCE #1 (comm rank 3)"), groups(plan, 3));
        for (String actor : List.of("b", "d")) {
            assertEquals(List.of("R c0", "C load", "A #0", "C f", "A #1"), ops(plan, actor), "bind order: " + actor);
        }
        assertEquals(List.of("R c0", "C load", "A #0", "C f", "A #1", "W c2"), ops(plan, "a"));
        assertTrue(text.contains("actor c @ localhost/w2/gpu0[GPU-C]:\n"), text);
        // Every GPU: two output buffers and one communicator rank with two ring neighbours (the same in both orders).
        for (DeviceMemory m : plan.devices()) {
            assertEquals(2 * MIB + RANK + 2 * PEER, m.heldBytes(), m::toString);
        }
        assertEquals(4, plan.devices().size());
        assertEquals(6 * 2, ScheduleChecker.simulate(plan, 6));
    }

    @Test
    void anUnusedMemberOutputStillTakesPart() {
        InputNode<String> in = Graph.input();
        List<Node<DeviceTensor>> sums = Graph.allReduce(List.of(a.bind(Gpu::load, in), b.bind(Gpu::load, in)));
        ExecutionPlan plan = GraphCompiler.compile(sums.get(0), twoGpus, TWO_SLOTS);
        assertEquals(List.of("R c0", "C load", "A #0"), ops(plan, "b"));
        assertEquals(List.of("R c0", "C load", "A #0", "W c1"), ops(plan, "a"));
        assertEquals(Transport.STAGED, plan.channels().get(1).transport(), "the driver reads a's sum");
        assertEquals("allreduce#0[0]", plan.nodes().get(plan.channels().get(1).node()).label());
        assertEquals(3, ScheduleChecker.simulate(plan, 3));
    }

    @Test
    void anAllReduceOutputFeedsOtherActorsOverOrdinaryGpuEdges() {
        InputNode<String> in = Graph.input();
        List<Node<DeviceTensor>> sums = Graph.allReduce(List.of(a.bind(Gpu::load, in), b.bind(Gpu::load, in)));
        Node<DeviceTensor> out = c.bind(Gpu::add, sums.get(0), sums.get(1));
        ExecutionPlan plan = GraphCompiler.compile(out, places().put(a, gpu(0)).put(b, gpu(1)).put(c, gpu(2)).topology(),
                TWO_SLOTS);
        assertEquals(List.of(Transport.IN_PROCESS, Transport.NCCL, Transport.NCCL, Transport.STAGED),
                plan.channels().stream().map(ExecutionPlan.ChannelSpec::transport).toList());
        assertEquals("AUTO: c on another GPU (localhost/driver/gpu2)", plan.channels().get(1).reason());
        assertEquals(List.of(new CommunicatorSpec(0, List.of(a.id(), b.id(), c.id())),
                new CommunicatorSpec(1, List.of(a.id(), b.id()))), plan.communicators());
        assertEquals(List.of("ALL_REDUCE #0 (comm rank 0)", "SEND c1 -> r2"), groups(plan, 0));
        assertEquals(4 * (2 + 1), ScheduleChecker.simulate(plan, 4));
    }

    // ---- ordering ----

    /**
     * a sends p to b by NCCL, then all-reduces; b all-reduces first and reads p only afterwards, for its last call:
     * in bind order a waits in its send for b, b in the all-reduce for a.
     */
    private Node<DeviceTensor> sendThenAllReduce() {
        InputNode<String> in = Graph.input();
        Node<DeviceTensor> p = a.bind(Gpu::load, in);
        Node<DeviceTensor> q = b.bind(Gpu::load, in);
        Node<DeviceTensor> x = a.bind(Gpu::f, p);
        List<Node<DeviceTensor>> sums = Graph.allReduce(List.of(x, q));
        return b.bind(Gpu::add, sums.get(1), p);
    }

    @Test
    void aBindOrderThatWouldDeadlockIsReordered() {
        ExecutionPlan plan = GraphCompiler.compile(sendThenAllReduce(), twoGpus, TWO_SLOTS);
        assertEquals(List.of("R c0", "C load", "W c1", "C f", "A #0"), ops(plan, "a"));
        assertEquals(List.of("R c0", "C load", "R c1", "A #0", "C add", "W c2"), ops(plan, "b"),
                "b receives p before the all-reduce");
        assertEquals(List.of("RECV c1 <- r0", "ALL_REDUCE #0 (comm rank 1)"), groups(plan, 1));
        assertEquals(5 * 2, ScheduleChecker.simulate(plan, 5));

        // The bind order, by hand: b's READ c1 back after its all-reduce.
        List<ActorSchedule> bindOrder = new ArrayList<>();
        for (ActorSchedule s : plan.schedules()) {
            List<Operation> ops = new ArrayList<>(s.ops());
            if (s.name().equals("b")) {
                ops.add(3, ops.remove(2));
            }
            bindOrder.add(new ActorSchedule(s.actor(), s.name(), s.placement(), s.frameSize(), ops));
        }
        assertEquals(List.of("R c0", "C load", "A #0", "R c1", "C add", "W c2"),
                bindOrder.get(1).ops().stream().map(AllReduceTest::describe).toList());
        NcclSchedule nccl = NcclScheduler.schedule(bindOrder, plan.channels(), plan.collectives(), plan.communicators());
        ExecutionPlan deadlocking = new ExecutionPlan(plan.inputArity(), plan.maxInflight(), plan.nodes(), plan.channels(),
                bindOrder, plan.outputs(), plan.multiOutput(), plan.devices(), nccl, plan.communicators(),
                plan.collectives());
        ScheduleChecker.checkPairOrder(nccl);
        IllegalStateException e = assertThrows(IllegalStateException.class, () -> ScheduleChecker.simulate(deadlocking, 1));
        assertEquals("deadlock after 0 transfers and 0 collectives: a at execution 0 waits in r0 SEND c1 -> r1 (posted); "
                + "b at execution 0 waits in r1 ALL_REDUCE #0 (comm rank 1) (posted); driver (results) at execution 0 "
                + "waits in READ c2", e.getMessage());
        assertThrows(IllegalStateException.class, () -> ScheduleChecker.simulate(nccl, 1));
    }

    @Test
    void overlapMovesAnAllReduceAheadOfEarlierComputes() {
        // b's value w reaches a before a's add; the all-reduce needs only x, so with overlap it goes before add.
        InputNode<String> in = Graph.input();
        Node<DeviceTensor> x = a.bind(Gpu::load, in);
        Node<DeviceTensor> y = b.bind(Gpu::load, in);
        Node<DeviceTensor> w = b.bind(Gpu::f, y);
        Node<DeviceTensor> u = a.bind(Gpu::add, x, w);
        List<Node<DeviceTensor>> sums = Graph.allReduce(List.of(x, y));
        Node<?> out = Graph.outputs(u, sums.get(1));
        ExecutionPlan inOrder = GraphCompiler.compile(out, twoGpus, TWO_SLOTS);
        assertEquals(List.of("R c0", "C load", "R c1", "C add", "W c2", "A #0"), ops(inOrder, "a"));
        ExecutionPlan overlapped = GraphCompiler.compile(out, twoGpus, TWO_SLOTS.overlapGpuCommunication(true));
        assertEquals(List.of("R c0", "C load", "R c1", "A #0", "C add", "W c2"), ops(overlapped, "a"));
        assertEquals(inOrder.collectives(), overlapped.collectives());
        assertEquals(inOrder.communicators(), overlapped.communicators());
        assertEquals(4 * 2, ScheduleChecker.simulate(inOrder, 4));
        assertEquals(4 * 2, ScheduleChecker.simulate(overlapped, 4));
    }

    // ---- memory ----

    @Test
    void allReducesAreBookedBeforeEdgesAndHaveNoFallback() {
        // b's GPU has room for the all-reduce (1 MiB + NCCL 80 MiB) but then not for a's 10 MiB of receive slots.
        InputNode<String> in = Graph.input();
        Node<DeviceTensor> x = a.bind(Gpu::load, in);
        List<Node<DeviceTensor>> sums = Graph.allReduce(List.of(x, b.bind(Gpu::f, x)));
        Topology tight = places().put(a, gpu(0)).put(b, gpu("driver", 1, 90 * MIB)).topology();
        ExecutionPlan plan = GraphCompiler.compile(Graph.outputs(List.of(sums.get(0))), tight,
                CompileOptions.defaults().gpuMemoryFraction(1.0));
        assertEquals(Transport.STAGED, plan.channels().get(1).transport());
        assertEquals("AUTO would pick NCCL (b on another GPU (localhost/driver/gpu1)), but its receive slots do not fit "
                + "on localhost/gpu1: b needs 10485760 B (10 slots x 1048576 B each), 84934656 B are already held there, "
                + "budget 94371840 B (free 94371840 B x CompileOptions.gpuMemoryFraction 1.0)",
                plan.channels().get(1).reason(), "the NCCL buffers for a and b are already booked by the all-reduce");
        assertEquals(MIB + MIB + RANK + PEER, plan.devices().get(1).heldBytes(), "output + staging buffer + NCCL");

        InputNode<String> in2 = Graph.input();
        List<Node<DeviceTensor>> small = Graph.allReduce(List.of(a.bind(Gpu::load, in2), b.bind(Gpu::load, in2)));
        Topology tiny = places().put(a, gpu(0)).put(b, gpu("driver", 1, 80 * MIB)).topology();
        rejects(Graph.outputs(List.of(small.get(0))), tiny, "allreduce#0[1]: allreduce#0 does not fit: its output buffer and NCCL "
                + "buffers do not fit on localhost/gpu1: b needs 1048576 B (CompileOptions.bufferBytes, for the sum), NCCL "
                + "buffers there grow by 83886080 B to 83886080 B (1 rank x CompileOptions.NCCL_RANK_BYTES 67108864 B + 1 "
                + "peer x CompileOptions.NCCL_PEER_BYTES 16777216 B), 0 B are already held there, budget 75497472 B (free "
                + "83886080 B x CompileOptions.gpuMemoryFraction 0.9); an all-reduce has no fallback: raise "
                + "CompileOptions.gpuMemoryFraction or lower bufferBytes, or place its members on GPUs with more free "
                + "memory");
    }

    // ---- validation ----

    @Test
    void oneInputIsRejected() {
        InputNode<String> in = Graph.input();
        List<Node<DeviceTensor>> sums = Graph.allReduce(List.of(a.bind(Gpu::load, in)));
        rejects(sums.getFirst(), twoGpus, "allreduce#0[0]: an all-reduce needs at least 2 inputs, got 1 (a.load); pass "
                + "the tensor of every member to one Graph.allReduce call, or use the input itself");
    }

    @Test
    void theGraphInputIsRejected() {
        InputNode<DeviceTensor> in = Graph.input();
        List<Node<DeviceTensor>> sums = Graph.allReduce(List.of(b.bind(Gpu::f, in), in));
        rejects(sums.getFirst(), twoGpus, "allreduce#0[1]: input 1 of allreduce#0 is the graph's input, which the driver "
                + "passes and no actor computes; an all-reduce sums device tensors of actors: bind an actor method "
                + "declared to return dev.kiln.tensor.DeviceTensor and pass its node");

        InputNode2<String, DeviceTensor> args = Graph.input2();
        Node<DeviceTensor> second = args.second();
        List<Node<DeviceTensor>> parts = Graph.allReduce(List.of(second, a.bind(Gpu::load, args.first())));
        rejects(parts.get(1), twoGpus, "allreduce#0[0]: input 0 of allreduce#0 is the graph's input[1], which the driver "
                + "passes and no actor computes; an all-reduce sums device tensors of actors: bind an actor method "
                + "declared to return dev.kiln.tensor.DeviceTensor and pass its node");
    }

    @Test
    void aMethodNotDeclaredToReturnDeviceTensorIsRejected() {
        InputNode<String> in = Graph.input();
        @SuppressWarnings("unchecked") // what raw types or an erased generic method let through
        Node<DeviceTensor> label = (Node<DeviceTensor>) (Node<?>) b.bind(Gpu::label, in);
        List<Node<DeviceTensor>> sums = Graph.allReduce(List.of(a.bind(Gpu::load, in), label));
        rejects(sums.getFirst(), twoGpus, "allreduce#0[1]: input 1 of allreduce#0 is b.label, declared to return "
                + "java.lang.String; an all-reduce sums device tensors: pass a node whose method is declared to return "
                + "dev.kiln.tensor.DeviceTensor");
    }

    @Test
    void twoInputsOnOneActorAreRejected() {
        InputNode<String> in = Graph.input();
        Node<DeviceTensor> x = a.bind(Gpu::load, in);
        List<Node<DeviceTensor>> sums = Graph.allReduce(List.of(x, b.bind(Gpu::load, in), a.bind(Gpu::f, x)));
        rejects(sums.getFirst(), twoGpus, "allreduce#0[2]: inputs 0 and 2 of allreduce#0 (a.load and a.f) are both on "
                + "actor a; an all-reduce has one member per actor: compute each input on a different actor");

        InputNode<String> in2 = Graph.input();
        Node<DeviceTensor> twice = a.bind(Gpu::load, in2);
        rejects(Graph.allReduce(List.of(twice, twice)).getFirst(), twoGpus, "allreduce#0[1]: inputs 0 and 1 of "
                + "allreduce#0 (a.load and a.load) are both on actor a; an all-reduce has one member per actor: compute "
                + "each input on a different actor");
    }

    @Test
    void aMemberWithoutGpuIsRejected() {
        InputNode<String> in = Graph.input();
        List<Node<DeviceTensor>> sums = Graph.allReduce(List.of(a.bind(Gpu::load, in), b.bind(Gpu::load, in)));
        rejects(sums.getFirst(), places().put(a, gpu(0)).put(b, new ActorPlacement("localhost", "w1")).topology(),
                "allreduce#0[1]: member 1 of allreduce#0, b (localhost/w1), has no GPU; an all-reduce runs on NCCL, "
                        + "which needs every member on a GPU: place b on one (ActorOptions.gpu(n))");
    }

    @Test
    void twoMembersOnOneGpuAreRejected() {
        InputNode<String> in = Graph.input();
        List<Node<DeviceTensor>> sums = Graph.allReduce(List.of(a.bind(Gpu::load, in), b.bind(Gpu::load, in),
                c.bind(Gpu::load, in)));
        rejects(sums.getFirst(), places().put(a, gpu(0)).put(b, gpu(1)).put(c, gpu("w1", 1, GIB)).topology(),
                "allreduce#0[2]: members 1 and 2 of allreduce#0, b and c, both use localhost/gpu1, and NCCL refuses two "
                        + "ranks of one communicator on one GPU; place the members on different GPUs");

        InputNode<String> in2 = Graph.input();
        List<Node<DeviceTensor>> renumbered = Graph.allReduce(List.of(a.bind(Gpu::load, in2), b.bind(Gpu::load, in2)));
        rejects(renumbered.getFirst(), places().put(a, gpu("w1", 0, "GPU-A", GIB)).put(b, gpu("w2", 3, "GPU-A", GIB))
                        .topology(), "allreduce#0[1]: members 0 and 1 of allreduce#0, a and b, both use GPU GPU-A of "
                        + "localhost (gpu0 in a's JVM, gpu3 in b's), and NCCL refuses two ranks of one communicator on "
                        + "one GPU; place the members on different GPUs");
    }

    @Test
    void membersOnAnyJvmsAndHostsAreAccepted() {
        InputNode<String> in = Graph.input();
        List<Node<DeviceTensor>> sums = Graph.allReduce(List.of(a.bind(Gpu::load, in), b.bind(Gpu::load, in),
                c.bind(Gpu::load, in)));
        Topology spread = places().put(a, gpu("w1", 0, GIB)).put(b, gpu("w2", 0, "GPU-B", GIB))
                .put(c, new ActorPlacement("host2", "w", 0, GIB)).topology();
        ExecutionPlan plan = GraphCompiler.compile(Graph.outputs(List.of(b.bind(Gpu::toHost, sums.get(1)))), spread, TWO_SLOTS);
        assertEquals(List.of(a.id(), b.id(), c.id()), plan.communicators().getFirst().ranks());
        assertEquals(3, ScheduleChecker.simulate(plan, 3));
    }

    @Test
    void anAllReduceThatReachesNoOutputIsRejected() {
        InputNode<String> in = Graph.input();
        Node<DeviceTensor> x = a.bind(Gpu::load, in);
        Node<DeviceTensor> y = b.bind(Gpu::load, in);
        Graph.allReduce(List.of(x, y));
        rejects(Graph.outputs(x, y), twoGpus, "allreduce[0]: this all-reduce (of a.load, b.load) does not reach an "
                + "output: none of its results is used; pass one to Graph.outputs(...) or use it as an argument, or do "
                + "not build the all-reduce");
    }

    @Test
    void anAllReduceOutputIsTypeCheckedAsADeviceTensor() {
        InputNode<String> in = Graph.input();
        List<Node<DeviceTensor>> sums = Graph.allReduce(List.of(a.bind(Gpu::load, in), b.bind(Gpu::load, in)));
        rejects(a.bind(Gpu::label, GraphCompilerTest.unchecked(sums.get(0))), twoGpus, "a.label: argument 1 of Gpu.label takes java.lang.String but "
                + "upstream allreduce#0[0] returns dev.kiln.tensor.DeviceTensor; bind a node of a matching type or change "
                + "the parameter");
    }

    @Test
    void buildingChecksTheList() {
        assertEquals("Graph.allReduce needs the input of every member, got none",
                assertThrows(IllegalArgumentException.class, () -> Graph.allReduce(List.of())).getMessage());
        InputNode<String> in = Graph.input();
        assertEquals("input 1 of Graph.allReduce is null", assertThrows(NullPointerException.class,
                () -> Graph.allReduce(Arrays.asList(a.bind(Gpu::load, in), null))).getMessage());
        InputNode<String> other = Graph.input();
        assertThrows(IllegalArgumentException.class,
                () -> Graph.allReduce(List.of(a.bind(Gpu::load, in), b.bind(Gpu::load, other))));

        Node<DeviceTensor> x = a.bind(Gpu::load, in);
        List<Node<DeviceTensor>> sums = Graph.allReduce(List.of(x, b.bind(Gpu::load, in)));
        assertEquals(Node.Kind.ALL_REDUCE, sums.get(1).kind());
        assertEquals(1, sums.get(1).member());
        assertEquals(b, sums.get(1).actor());
        assertEquals(List.of(sums.get(0), sums.get(1)), sums.get(0).collective());
        assertEquals("allreduce[1]", sums.get(1).label());
        assertEquals(in, sums.get(0).input());
        assertEquals(-1, x.member());
        assertEquals(List.of(), x.collective());
    }

    @Test
    void planRecordsCheckTheirShape() {
        assertThrows(IllegalArgumentException.class, () -> new CommunicatorSpec(0, List.of()));
        assertThrows(IllegalArgumentException.class, () -> new CommunicatorSpec(0, List.of(1, 1)));
        assertThrows(IllegalArgumentException.class, () -> new CollectiveSpec(0, List.of(1), 0, List.of(3)));
        assertThrows(IllegalArgumentException.class, () -> new CollectiveSpec(0, List.of(1, 2), 0, List.of(3)));
        assertEquals(1, new CommunicatorSpec(0, List.of(5, 7)).rankOf(7));
        assertEquals(-1, new CommunicatorSpec(0, List.of(5, 7)).rankOf(6));

        ExecutionPlan plan = twoMembers();
        IllegalArgumentException wrongRanks = assertThrows(IllegalArgumentException.class, () -> new ExecutionPlan(
                plan.inputArity(), plan.maxInflight(), plan.nodes(), plan.channels(), plan.schedules(), plan.outputs(),
                plan.multiOutput(), plan.devices(), plan.nccl(), List.of(new CommunicatorSpec(0, List.of(a.id(), c.id()))),
                plan.collectives()));
        assertEquals("allreduce#0 has members [1, 2] but comm0 has ranks [1, 3]", wrongRanks.getMessage());
        assertThrows(IllegalArgumentException.class, () -> new ExecutionPlan(plan.inputArity(), plan.maxInflight(),
                plan.nodes(), plan.channels(), plan.schedules(), plan.outputs(), plan.multiOutput(), plan.devices(),
                plan.nccl(), List.of(), plan.collectives()));
    }
}
