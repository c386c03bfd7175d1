package dev.kiln.transport.gpu;

import dev.kiln.graph.internal.GraphInternals;
import dev.kiln.compiler.CompileOptions;
import dev.kiln.compiler.ExecutionPlan;
import dev.kiln.compiler.ExecutionPlan.CommGroup;
import dev.kiln.compiler.ExecutionPlan.CommOp;
import dev.kiln.compiler.ExecutionPlan.NcclSchedule;
import dev.kiln.compiler.GraphCompiler;
import dev.kiln.compiler.ScheduleChecker;
import dev.kiln.compiler.Topology;
import dev.kiln.compiler.Topology.ActorPlacement;
import dev.kiln.graph.ActorRef;
import dev.kiln.graph.Graph;
import dev.kiln.graph.InputNode;
import dev.kiln.graph.Node;
import dev.kiln.graph.Transport;
import dev.kiln.tensor.DType;
import dev.kiln.tensor.DeviceTensor;
import net.jqwik.api.ForAll;
import net.jqwik.api.Property;
import net.jqwik.api.constraints.IntRange;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.Set;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The NCCL schedules the compiler produces, run on simulated communicators (one thread and one simulated device
 * per rank) with every byte checked. Jupiter tests carry their own {@code @Timeout}: a class-level one would also
 * sit on the jqwik property.
 */
class ScheduleRunnerTest {

    private static final Duration PATIENT = Duration.ofSeconds(30);

    /** An actor on device tensors; never run. */
    static final class Gpu {
        DeviceTensor load(String s) {
            throw new UnsupportedOperationException(s);
        }

        DeviceTensor f(DeviceTensor x) {
            return x;
        }

        DeviceTensor add(DeviceTensor x, DeviceTensor y) {
            return x;
        }

        String toHost(dev.kiln.tensor.Tensor x) {
            return String.valueOf(x); // an actor without a GPU gets the host copy of a GPU edge
        }
    }

    private static final Object RUNTIME = new Object();

    private static ActorRef<Gpu> actor(int id) {
        return GraphInternals.actorRef(id, "a" + id, Gpu.class, RUNTIME);
    }

    private static ActorPlacement gpu(int device) {
        return new ActorPlacement("localhost", "driver", device, 1L << 34);
    }

    private final ActorRef<Gpu> a = actor(1);
    private final ActorRef<Gpu> b = actor(2);
    private final ActorRef<Gpu> c = actor(3);
    private final ActorRef<Gpu> d = actor(4);
    private final Topology fourGpus = new Topology(ActorPlacement.IN_DRIVER,
            Map.of(a.id(), gpu(0), b.id(), gpu(1), c.id(), gpu(2), d.id(), gpu(3)));

    private static long runAndCompare(ExecutionPlan plan, int executions) {
        long transfers = ScheduleRunner.run(plan.nccl(), executions, 256, PATIENT);
        assertEquals(ScheduleChecker.simulate(plan, executions), transfers, "the run matches the simulation");
        return transfers;
    }

    /** Point-to-point edges and all-reduces over 2, 3 and 4 ranks, every sum checked on every member. */
    @Test
    @Timeout(120)
    void allReducesRunInTheCompiledOrder() {
        for (int members = 2; members <= 4; members++) {
            InputNode<String> in = Graph.input();
            Node<DeviceTensor> x = a.bind(Gpu::load, in);
            List<Node<DeviceTensor>> inputs = new java.util.ArrayList<>();
            inputs.add(x);
            List<ActorRef<Gpu>> others = List.of(b, c, d).subList(0, members - 1);
            for (ActorRef<Gpu> o : others) {
                inputs.add(o.bind(Gpu::f, x));
            }
            List<Node<DeviceTensor>> sums = Graph.allReduce(inputs);
            ExecutionPlan plan = GraphCompiler.compile(Graph.outputs(sums), fourGpus,
                    CompileOptions.defaults());
            assertEquals(1, plan.collectives().size(), plan::toString);
            assertEquals((members - 1) * 20 + 20, runAndCompare(plan, 20), plan::toString);
        }
    }

    @Test
    @Timeout(120)
    void pipeline() {
        InputNode<String> in = Graph.input();
        Node<DeviceTensor> out = d.bind(Gpu::f, c.bind(Gpu::f, b.bind(Gpu::f, a.bind(Gpu::load, in))));
        ExecutionPlan plan = GraphCompiler.compile(out, fourGpus, CompileOptions.defaults());
        assertEquals(3 * 50, runAndCompare(plan, 50));
    }

    @Test
    @Timeout(120)
    void fanOutAndFanIn() {
        InputNode<String> in = Graph.input();
        Node<DeviceTensor> x = a.bind(Gpu::load, in);
        Node<DeviceTensor> out = d.bind(Gpu::add, b.bind(Gpu::f, x), c.bind(Gpu::add, x, x));
        ExecutionPlan plan = GraphCompiler.compile(out, fourGpus, CompileOptions.defaults());
        assertEquals("group(SEND c1 -> r1, SEND c1 -> r2)", plan.nccl().groups().getFirst().getFirst().toString());
        assertEquals(4 * 40, runAndCompare(plan, 40));
    }

    @Test
    @Timeout(120)
    void mixedCpuAndGpu() {
        // a -> b by NCCL, b -> h (no GPU) staged, h -> c (CPU value, then a tensor on gpu2), c -> d by NCCL.
        ActorRef<Gpu> h = actor(5);
        InputNode<String> in = Graph.input();
        Node<String> host = h.bind(Gpu::toHost, Graph.hostCopy(b.bind(Gpu::f, a.bind(Gpu::load, in))));
        Node<DeviceTensor> out = d.bind(Gpu::f, c.bind(Gpu::load, host));
        Map<Integer, ActorPlacement> placements = new HashMap<>(Map.of(a.id(), gpu(0), b.id(), gpu(1), c.id(), gpu(2),
                d.id(), gpu(3)));
        placements.put(h.id(), ActorPlacement.IN_DRIVER);
        ExecutionPlan plan = GraphCompiler.compile(out, new Topology(ActorPlacement.IN_DRIVER, placements),
                CompileOptions.defaults());
        assertEquals(Transport.STAGED, plan.channels().get(2).transport());
        assertEquals(2 * 30, runAndCompare(plan, 30));
    }

    @Test
    @Timeout(120)
    void compiledOrderRunsWhereBindOrderDeadlocks() {
        // a sends x to b, then y to c; c sends f(y) to b, which reads c's value first (argument order).
        InputNode<String> in = Graph.input();
        Node<DeviceTensor> x = a.bind(Gpu::load, in);
        Node<DeviceTensor> z = c.bind(Gpu::f, a.bind(Gpu::f, x));
        ExecutionPlan plan = GraphCompiler.compile(b.bind(Gpu::add, z, x), fourGpus, CompileOptions.defaults());
        assertEquals(3 * 25, runAndCompare(plan, 25));

        // Rank 2 (b) in bind order: receive from c first. Every pair agrees, but the three ranks wait in a cycle.
        NcclSchedule compiled = plan.nccl();
        List<CommGroup> bRanks = compiled.groups().get(2);
        NcclSchedule bindOrder = new NcclSchedule(compiled.ranks(), List.of(compiled.groups().get(0),
                compiled.groups().get(1), List.of(bRanks.get(1), bRanks.get(0))));
        IllegalStateException e = assertThrows(IllegalStateException.class,
                () -> ScheduleRunner.run(bindOrder, 1, 256, Duration.ofMillis(500)));
        assertTrue(e.getMessage().matches("rank \\d failed: rank \\d waited PT0\\.5S for its group \\d (SEND|RECV) c\\d "
                + "(->|<-) r\\d of execution 0 to complete: the ranks issue their operations in orders that deadlock "
                + "\\(or a peer is gone\\)"), e::getMessage);
    }

    @Test
    @Timeout(60)
    void wrongBytesAreCaught() {
        // One rank sending to itself in a group; the communicator flips the first received byte.
        List<CommGroup> self = List.of(new CommGroup(List.of(new CommOp(CommOp.Kind.SEND, 4, 0),
                new CommOp(CommOp.Kind.RECV, 4, 0))));
        try (SimulatedDeviceOps gpus = SimulatedDeviceOps.create(SimulatedGpus.of(1, 64L << 20));
             Communicator solo = gpus.joinCommunicator(1, gpus.newCommunicatorId(), 0, 0, 0)) {
            solo.awaitReady(PATIENT);
            assertEquals(3, ScheduleRunner.runRank(self, solo, Map.of(), gpus, 0, 3, 64, PATIENT));
            IllegalStateException e = assertThrows(IllegalStateException.class,
                    () -> ScheduleRunner.runRank(self, new Corrupting(solo, gpus), Map.of(), gpus, 0, 1, 64, PATIENT));
            assertEquals(String.format("rank 0 received wrong data for c4 of execution 0 from rank 0 at byte 0: "
                    + "expected 0x%02x, got 0x%02x", ScheduleRunner.pattern(4, 0, 0) & 0xFF,
                    ~ScheduleRunner.pattern(4, 0, 0) & 0xFF), e.getMessage());
            assertEquals(0, gpus.allocatedBytes(), "the failed rank freed its buffers");
        }
    }

    @Test
    void patternDependsOnChannelExecutionAndOffset() {
        Set<Byte> seen = new HashSet<>();
        for (int channel = 0; channel < 4; channel++) {
            for (int execution = 0; execution < 4; execution++) {
                seen.add(ScheduleRunner.pattern(channel, execution, 0));
            }
        }
        assertTrue(seen.size() > 8, seen::toString);
    }

    /**
     * Flips the first byte of every receive once its group (or call) completes: a kernel enqueued on the rank's stream
     * right after the operations, so it runs after the bytes arrived and before the runner checks them.
     */
    private static final class Corrupting implements Communicator {
        private final Communicator delegate;
        private final SimulatedDeviceOps gpus;
        private final List<Long> received = new ArrayList<>();
        private int depth;

        Corrupting(Communicator delegate, SimulatedDeviceOps gpus) {
            this.delegate = delegate;
            this.gpus = gpus;
        }

        private void corrupt() {
            for (long address : received) {
                MemorySegment at = gpus.memory(address, 1);
                gpus.enqueue(device(), 0, () -> at.set(ValueLayout.JAVA_BYTE, 0, (byte) ~at.get(ValueLayout.JAVA_BYTE, 0)));
            }
            received.clear();
        }

        @Override
        public int rank() {
            return delegate.rank();
        }

        @Override
        public int size() {
            return delegate.size();
        }

        @Override
        public int device() {
            return delegate.device();
        }

        @Override
        public void awaitReady(Duration timeout) {
            delegate.awaitReady(timeout);
        }

        @Override
        public String asyncError() {
            return delegate.asyncError();
        }

        @Override
        public void send(long address, long bytes, int peer) {
            delegate.send(address, bytes, peer);
        }

        @Override
        public void recv(long address, long bytes, int peer) {
            delegate.recv(address, bytes, peer);
            received.add(address);
            if (depth == 0) {
                corrupt();
            }
        }

        @Override
        public void allReduce(long sendAddress, long recvAddress, long count, DType dtype) {
            delegate.allReduce(sendAddress, recvAddress, count, dtype);
        }

        @Override
        public void groupStart() {
            depth++;
            delegate.groupStart();
        }

        @Override
        public void groupEnd() {
            delegate.groupEnd();
            if (--depth == 0) {
                corrupt();
            }
        }

        @Override
        public void synchronize() {
            delegate.synchronize();
        }

        @Override
        public void abort() {
            delegate.abort();
        }

        @Override
        public boolean finish(Duration timeout) {
            return delegate.finish(timeout);
        }

        @Override
        public void close() {
            delegate.close();
        }
    }

    /** A random DAG of tensor calls over actors each on its own GPU: every edge between actors is NCCL. */
    private static ExecutionPlan randomPlan(long seed, boolean overlap) {
        Random rnd = new Random(seed);
        int actorCount = 2 + rnd.nextInt(5);
        List<ActorRef<Gpu>> actors = new ArrayList<>();
        Map<Integer, ActorPlacement> placements = new HashMap<>();
        for (int i = 0; i < actorCount; i++) {
            actors.add(actor(i + 1));
            placements.put(i + 1, gpu(i));
        }
        InputNode<String> in = Graph.input();
        List<Node<DeviceTensor>> nodes = new ArrayList<>(List.of(actors.get(rnd.nextInt(actorCount)).bind(Gpu::load, in)));
        Set<Node<?>> used = new HashSet<>();
        int calls = 1 + rnd.nextInt(10);
        for (int i = 0; i < calls; i++) {
            ActorRef<Gpu> on = actors.get(rnd.nextInt(actorCount));
            Node<DeviceTensor> x = nodes.get(rnd.nextInt(nodes.size()));
            used.add(x);
            if (rnd.nextBoolean()) {
                nodes.add(on.bind(Gpu::f, x));
            } else {
                Node<DeviceTensor> y = nodes.get(rnd.nextInt(nodes.size()));
                used.add(y);
                nodes.add(on.bind(Gpu::add, x, y));
            }
        }
        Node<?>[] sinks = nodes.stream().filter(n -> !used.contains(n)).toArray(Node<?>[]::new);
        return GraphCompiler.compile(Graph.outputs(List.of(sinks)), new Topology(ActorPlacement.IN_DRIVER, placements),
                CompileOptions.defaults().maxInflight(1 + rnd.nextInt(3)).overlapGpuCommunication(overlap));
    }

    @Property(tries = 60)
    void randomCompiledSchedulesRunToTheEnd(@ForAll long seed, @ForAll boolean overlap,
                                            @ForAll @IntRange(min = 1, max = 8) int executions) {
        ExecutionPlan plan = randomPlan(seed, overlap);
        runAndCompare(plan, executions);
    }
}
