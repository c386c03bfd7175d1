package dev.kiln.compiler;

import dev.kiln.compiler.ExecutionPlan.ActorSchedule;
import dev.kiln.compiler.ExecutionPlan.AllReduce;
import dev.kiln.compiler.ExecutionPlan.CommGroup;
import dev.kiln.compiler.ExecutionPlan.Compute;
import dev.kiln.compiler.ExecutionPlan.NcclSchedule;
import dev.kiln.compiler.ExecutionPlan.Operation;
import dev.kiln.compiler.ExecutionPlan.Read;
import dev.kiln.compiler.ExecutionPlan.Write;
import dev.kiln.compiler.GpuActors.Gpu;
import dev.kiln.graph.ActorRef;
import dev.kiln.graph.Graph;
import dev.kiln.graph.InputNode;
import dev.kiln.graph.Node;
import dev.kiln.graph.Transport;
import dev.kiln.tensor.DeviceTensor;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

import java.util.ArrayList;
import java.util.List;

import static dev.kiln.compiler.GpuActors.gpu;
import static dev.kiln.compiler.GpuActors.gpuActor;
import static dev.kiln.compiler.GpuActors.places;
import static org.junit.jupiter.api.Assertions.assertDoesNotThrow;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The order of NCCL operations the compiler gives pipelines, fan-out, fan-in and graphs whose bind order deadlocks. */
@Timeout(30)
class NcclScheduleTest {

    private final ActorRef<Gpu> a = gpuActor(1, "a");
    private final ActorRef<Gpu> b = gpuActor(2, "b");
    private final ActorRef<Gpu> c = gpuActor(3, "c");
    private final ActorRef<Gpu> d = gpuActor(4, "d");

    private final Topology fourGpus = places().put(a, gpu(0)).put(b, gpu(1)).put(c, gpu(2)).put(d, gpu(3)).topology();

    private static List<String> groups(ExecutionPlan plan, int rank) {
        return plan.nccl().groups().get(rank).stream().map(CommGroup::toString).toList();
    }

    private static List<String> ops(ExecutionPlan plan, String actor) {
        for (ActorSchedule s : plan.schedules()) {
            if (s.name().equals(actor)) {
                return s.ops().stream().map(NcclScheduleTest::describe).toList();
            }
        }
        throw new AssertionError("no actor " + actor);
    }

    private static String describe(Operation op) {
        return switch (op) {
            case Read r -> "R c" + r.channel();
            case Write w -> "W c" + w.channel();
            case Compute c -> "C " + c.method().name();
            case AllReduce r -> "A #" + r.collective();
        };
    }

    @Test
    void pipelineOverFourGpus() {
        InputNode<String> in = Graph.input();
        Node<DeviceTensor> out = d.bind(Gpu::f, c.bind(Gpu::f, b.bind(Gpu::f, a.bind(Gpu::load, in))));
        ExecutionPlan plan = GraphCompiler.compile(out, fourGpus, CompileOptions.defaults());
        assertEquals(List.of(1, 2, 3, 4), plan.nccl().ranks());
        assertEquals(List.of("SEND c1 -> r1"), groups(plan, 0));
        assertEquals(List.of("RECV c1 <- r0", "SEND c2 -> r2"), groups(plan, 1));
        assertEquals(List.of("RECV c2 <- r1", "SEND c3 -> r3"), groups(plan, 2));
        assertEquals(List.of("RECV c3 <- r2"), groups(plan, 3));
        assertEquals(3 * 7, ScheduleChecker.simulate(plan, 7));
    }

    @Test
    void fanOutAndFanIn() {
        // a -> (b, c) -> d: a's send to b and c is one group; d receives from b, then from c (argument order).
        InputNode<String> in = Graph.input();
        Node<DeviceTensor> x = a.bind(Gpu::load, in);
        Node<DeviceTensor> out = d.bind(Gpu::add, b.bind(Gpu::f, x), c.bind(Gpu::f, x));
        ExecutionPlan plan = GraphCompiler.compile(out, fourGpus, CompileOptions.defaults().maxInflight(2));
        assertEquals(List.of("group(SEND c1 -> r1, SEND c1 -> r2)"), groups(plan, 0));
        assertEquals(List.of("RECV c1 <- r0", "SEND c2 -> r3"), groups(plan, 1));
        assertEquals(List.of("RECV c1 <- r0", "SEND c3 -> r3"), groups(plan, 2));
        assertEquals(List.of("RECV c2 <- r1", "RECV c3 <- r2"), groups(plan, 3));
        assertEquals(4 * 5, ScheduleChecker.simulate(plan, 5));
    }

    /** a sends x to b, then y to c; c sends f(y) to b; b reads c's value first (argument order). */
    private Node<DeviceTensor> crossedOrder() {
        InputNode<String> in = Graph.input();
        Node<DeviceTensor> x = a.bind(Gpu::load, in);
        Node<DeviceTensor> y = a.bind(Gpu::f, x);
        Node<DeviceTensor> z = c.bind(Gpu::f, y);
        return b.bind(Gpu::add, z, x);
    }

    @Test
    void bindOrderThatWouldDeadlockIsReordered() {
        ExecutionPlan plan = GraphCompiler.compile(crossedOrder(), fourGpus, CompileOptions.defaults());
        assertEquals(List.of(a.id(), c.id(), b.id()), plan.nccl().ranks());
        assertEquals(List.of("R c0", "C load", "W c1", "C f", "W c2"), ops(plan, "a"));
        assertEquals(List.of("R c1", "R c3", "C add", "W c4"), ops(plan, "b"), "b receives x from a first");
        assertEquals(List.of("SEND c1 -> r2", "SEND c2 -> r1"), groups(plan, 0));
        assertEquals(List.of("RECV c2 <- r0", "SEND c3 -> r2"), groups(plan, 1));
        assertEquals(List.of("RECV c1 <- r0", "RECV c3 <- r1"), groups(plan, 2));
        assertEquals(3 * 4, ScheduleChecker.simulate(plan, 4));

        // The same plan in bind order: every pair of ranks agrees on its order, yet the three ranks deadlock.
        List<ActorSchedule> bindOrder = new ArrayList<>();
        for (ActorSchedule s : plan.schedules()) {
            List<Operation> ops = new ArrayList<>(s.ops());
            if (s.name().equals("b")) {
                ops.set(0, s.ops().get(1));
                ops.set(1, s.ops().get(0));
            }
            bindOrder.add(new ActorSchedule(s.actor(), s.name(), s.placement(), s.frameSize(), ops));
        }
        NcclSchedule nccl = NcclScheduler.schedule(bindOrder, plan.channels());
        ExecutionPlan deadlocking = new ExecutionPlan(plan.inputArity(), plan.maxInflight(), plan.nodes(), plan.channels(),
                bindOrder, plan.outputs(), plan.multiOutput(), plan.devices(), nccl);
        assertDoesNotThrow(() -> ScheduleChecker.checkPairOrder(nccl));
        IllegalStateException e = assertThrows(IllegalStateException.class, () -> ScheduleChecker.simulate(deadlocking, 1));
        assertEquals("deadlock after 0 transfers: a at execution 0 waits in r0 SEND c1 -> r2 (posted); "
                + "c at execution 0 waits in r1 RECV c2 <- r0 (posted); b at execution 0 waits in r2 RECV c3 <- r1 (posted); "
                + "driver (results) at execution 0 waits in READ c4", e.getMessage());
        assertThrows(IllegalStateException.class, () -> ScheduleChecker.simulate(nccl, 1));
    }

    /** b labels the input (a CPU call) before it needs a's tensor. */
    private Node<List<Object>> labelThenScale() {
        InputNode<String> in = Graph.input();
        Node<DeviceTensor> x = a.bind(Gpu::load, in);
        Node<String> tag = b.bind(Gpu::label, in);
        return Graph.outputs(List.of(b.bind(Gpu::scale, x, tag)));
    }

    @Test
    void overlapMovesReceivesAheadOfEarlierComputes() {
        ExecutionPlan inOrder = GraphCompiler.compile(labelThenScale(), fourGpus, CompileOptions.defaults());
        assertEquals(List.of("R c0", "C label", "R c1", "C scale", "W c2"), ops(inOrder, "b"));
        ExecutionPlan overlapped = GraphCompiler.compile(labelThenScale(), fourGpus,
                CompileOptions.defaults().overlapGpuCommunication(true));
        assertEquals(List.of("R c1", "R c0", "C label", "C scale", "W c2"), ops(overlapped, "b"));
        assertEquals(inOrder.nccl(), overlapped.nccl(), "one receive: the same groups, at another place");
        assertEquals(5, ScheduleChecker.simulate(overlapped, 5));
        assertEquals(5, ScheduleChecker.simulate(inOrder, 5));
    }

    @Test
    void plansWithoutNcclKeepBindOrder() {
        InputNode<String> in = Graph.input();
        Topology oneGpu = places().put(a, gpu(0)).put(b, gpu(0)).put(c, gpu(0)).topology();
        Node<DeviceTensor> out = b.bind(Gpu::add, c.bind(Gpu::f, a.bind(Gpu::f, a.bind(Gpu::load, in))),
                a.bind(Gpu::load, in));
        ExecutionPlan plan = GraphCompiler.compile(out, oneGpu, CompileOptions.defaults());
        assertEquals(NcclSchedule.NONE, plan.nccl());
        assertEquals(List.of("R c0", "C load", "C f", "W c1", "C load", "W c3"), ops(plan, "a"));
        assertEquals(List.of("R c2", "R c3", "C add", "W c4"), ops(plan, "b"));
        assertEquals(0, ScheduleChecker.simulate(plan, 12));
    }

    @Test
    void sameActorTwiceWithNcclEdgesBothWays() {
        // a -> b -> a -> b: two ranks exchanging in both directions, one slot.
        InputNode<String> in = Graph.input();
        Node<DeviceTensor> out = b.bind(Gpu::f, a.bind(Gpu::f, b.bind(Gpu::f, a.bind(Gpu::load, in))));
        ExecutionPlan plan = GraphCompiler.compile(out, fourGpus, CompileOptions.defaults().maxInflight(1));
        assertEquals(List.of("SEND c1 -> r1", "RECV c2 <- r1", "SEND c3 -> r1"), groups(plan, 0));
        assertEquals(List.of("RECV c1 <- r0", "SEND c2 -> r0", "RECV c3 <- r0"), groups(plan, 1));
        assertEquals(3 * 6, ScheduleChecker.simulate(plan, 6));
    }

    @Test
    void stagedAndNcclEdgesInOnePlan() {
        // a (gpu0) -> b (gpu1) by NCCL, b -> h (no GPU) staged, h -> c (gpu2) staged, c -> a by NCCL.
        ActorRef<Gpu> h = gpuActor(6, "h");
        InputNode<String> in = Graph.input();
        Node<String> host = h.bind(Gpu::toHost, GpuActors.any(b.bind(Gpu::f, a.bind(Gpu::load, in))));
        Node<DeviceTensor> back = c.bind(Gpu::load, host);
        Node<DeviceTensor> out = a.bind(Gpu::f, back);
        Topology topology = places().put(a, gpu(0)).put(b, gpu(1)).put(c, gpu(2))
                .put(h, dev.kiln.compiler.Topology.ActorPlacement.IN_DRIVER).topology();
        ExecutionPlan plan = GraphCompiler.compile(out, topology, CompileOptions.defaults().maxInflight(2));
        assertEquals(List.of(Transport.IN_PROCESS, Transport.NCCL, Transport.STAGED, Transport.IN_PROCESS,
                Transport.NCCL, Transport.STAGED), plan.channels().stream().map(ExecutionPlan.ChannelSpec::transport).toList());
        assertEquals(2 * 9, ScheduleChecker.simulate(plan, 9));
        assertTrue(plan.toString().contains("nccl: 3 ranks\n"), plan::toString);
    }
}
