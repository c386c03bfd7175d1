package dev.kiln.compiler;

import dev.kiln.graph.internal.GraphInternals;
import dev.kiln.compiler.ExecutionPlan.ChannelSpec;
import dev.kiln.compiler.ExecutionPlan.CommGroup;
import dev.kiln.compiler.ExecutionPlan.CommOp;
import dev.kiln.compiler.ExecutionPlan.DeviceMemory;
import dev.kiln.compiler.ExecutionPlan.NcclSchedule;
import dev.kiln.compiler.GpuActors.Gpu;
import dev.kiln.compiler.TestActors.Text;
import dev.kiln.compiler.Topology.ActorPlacement;
import dev.kiln.compiler.Topology.PeerAccess;
import dev.kiln.compiler.Topology.PeerAccess.Link;
import dev.kiln.graph.ActorRef;
import dev.kiln.graph.Graph;
import dev.kiln.graph.InputNode;
import dev.kiln.graph.Node;
import dev.kiln.graph.Transport;
import dev.kiln.tensor.DeviceTensor;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

import java.util.List;
import java.util.Map;
import java.util.Set;

import static dev.kiln.compiler.ExecutionPlan.DRIVER;
import static dev.kiln.compiler.GpuActors.GIB;
import static dev.kiln.compiler.GpuActors.MIB;
import static dev.kiln.compiler.GpuActors.gpu;
import static dev.kiln.compiler.GpuActors.gpuActor;
import static dev.kiln.compiler.GpuActors.places;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Transport resolution, memory budgets and NCCL ranks of GPU edges. */
@Timeout(30)
class GpuPlanTest {

    private static final CompileOptions OPTIONS = CompileOptions.defaults();
    private static final long SLOTS = 10 * MIB; // maxInflight 10 x bufferBytes 1 MiB
    private static final long RANK = CompileOptions.NCCL_RANK_BYTES;
    private static final long PEER = CompileOptions.NCCL_PEER_BYTES;

    private final ActorRef<Gpu> a = gpuActor(1, "a");
    private final ActorRef<Gpu> b = gpuActor(2, "b");
    private final ActorRef<Gpu> c = gpuActor(3, "c");
    private final ActorRef<Gpu> d = gpuActor(4, "d");

    /** input -> a.load -> b.f; the channels are c0 input, c1 a.load, c2 b.f (to the driver). */
    private Node<DeviceTensor> pipeline() {
        InputNode<String> in = Graph.input();
        return b.bind(Gpu::f, GpuActors.any(a.bind(Gpu::load, in)));
    }

    private static ExecutionPlan compile(Node<?> out, Topology topology) {
        return GraphCompiler.compile(out, topology, OPTIONS);
    }

    private static void assertChannel(ChannelSpec channel, Transport transport, String reason) {
        assertEquals(transport, channel.transport(), channel::toString);
        assertEquals(reason, channel.reason());
    }

    private static GraphCompileException rejects(Node<?> out, Topology topology, CompileOptions options,
                                                 String... fragments) {
        GraphCompileException e = assertThrows(GraphCompileException.class,
                () -> GraphCompiler.compile(out, topology, options));
        for (String f : fragments) {
            assertTrue(e.getMessage().contains(f), () -> "expected \"" + f + "\" in: " + e.getMessage());
        }
        return e;
    }

    @Test
    void sameGpuSameJvmIsSameDevice() {
        ExecutionPlan plan = compile(pipeline(), places().put(a, gpu(0)).put(b, gpu(0)).topology());
        assertChannel(plan.channels().get(0), Transport.IN_PROCESS, "AUTO: writer and readers in one JVM");
        assertChannel(plan.channels().get(1), Transport.GPU_SAME_DEVICE,
                "AUTO: writer and readers in one JVM on localhost/gpu0");
        assertChannel(plan.channels().get(2), Transport.STAGED, "AUTO: the driver has no GPU");
        assertEquals(Map.of("localhost/gpu0", SLOTS), plan.deviceBytes());
        assertEquals(List.of(new DeviceMemory("localhost", 0, "gpu0", 16 * GIB, (long) (16 * GIB * 0.9), SLOTS, 0)),
                plan.devices());
        assertEquals(NcclSchedule.NONE, plan.nccl());
    }

    @Test
    void otherJvmOfTheHostIsCudaIpc() {
        ExecutionPlan plan = compile(pipeline(), places().put(a, gpu("w1", 0, GIB)).put(b, gpu("w2", 1, GIB)).topology());
        assertChannel(plan.channels().get(0), Transport.SHARED_MEMORY, "AUTO: writer and readers in different JVMs on localhost");
        assertChannel(plan.channels().get(1), Transport.CUDA_IPC, "AUTO: b in another JVM of localhost, all on GPUs");
        assertEquals(Map.of("localhost/gpu0", 0L, "localhost/gpu1", SLOTS), plan.deviceBytes());
        assertEquals(NcclSchedule.NONE, plan.nccl());
    }

    @Test
    void sameGpuInAnotherJvmIsCudaIpc() {
        ExecutionPlan plan = compile(pipeline(), places().put(a, gpu("w1", 0, GIB)).put(b, gpu("w2", 0, GIB)).topology());
        assertChannel(plan.channels().get(1), Transport.CUDA_IPC, "AUTO: b in another JVM of localhost, all on GPUs");
        assertEquals(Map.of("localhost/gpu0", SLOTS), plan.deviceBytes());
    }

    @Test
    void otherGpuOfTheJvmIsNccl() {
        ExecutionPlan plan = compile(pipeline(), places().put(a, gpu(0)).put(b, gpu(1)).topology());
        assertChannel(plan.channels().get(1), Transport.NCCL, "AUTO: b on another GPU (localhost/driver/gpu1)");
        assertEquals(new NcclSchedule(List.of(1, 2), List.of(
                List.of(new CommGroup(List.of(new CommOp(CommOp.Kind.SEND, 1, 1)))),
                List.of(new CommGroup(List.of(new CommOp(CommOp.Kind.RECV, 1, 0)))))), plan.nccl());
        assertEquals(0, plan.nccl().rankOf(a.id()));
        assertEquals(1, plan.nccl().rankOf(b.id()));
        assertEquals(-1, plan.nccl().rankOf(c.id()));
        assertEquals(Map.of("localhost/gpu0", RANK + PEER, "localhost/gpu1", SLOTS + RANK + PEER), plan.deviceBytes(),
                "each rank books NCCL's state and one peer");
        assertEquals(RANK + PEER, plan.devices().get(1).ncclBytes());
        assertEquals(1, ScheduleChecker.simulate(plan, 1));
    }

    @Test
    void otherHostIsNccl() {
        // a (localhost) -> b (host2) -> c (localhost) -> driver: NCCL both ways, staged to the driver on its host.
        InputNode<String> in = Graph.input();
        Node<DeviceTensor> out = c.bind(Gpu::f, b.bind(Gpu::f, a.bind(Gpu::load, in)));
        Topology topology = places().put(a, gpu(0)).put(b, new ActorPlacement("host2", "w", 0, GIB)).put(c, gpu(1))
                .topology();
        ExecutionPlan plan = compile(out, topology);
        assertChannel(plan.channels().get(1), Transport.NCCL, "AUTO: b on another host (host2/w/gpu0)");
        assertChannel(plan.channels().get(2), Transport.NCCL, "AUTO: c on another host (localhost/driver/gpu1)");
        assertChannel(plan.channels().get(3), Transport.STAGED, "AUTO: the driver has no GPU");
        assertEquals(List.of(1, 2, 3), plan.nccl().ranks());
        assertEquals(Map.of("host2/gpu0", SLOTS + RANK + 2 * PEER, "localhost/gpu0", RANK + PEER,
                "localhost/gpu1", SLOTS + RANK + PEER), plan.deviceBytes(), "b talks to a and c");
        assertEquals(List.of("host2/gpu0", "localhost/gpu0", "localhost/gpu1"),
                plan.devices().stream().map(DeviceMemory::name).toList());
        assertEquals(6, ScheduleChecker.simulate(plan, 3));
    }

    @Test
    void readerOrWriterWithoutGpuIsStaged() {
        ExecutionPlan plan = compile(pipeline(), places().put(a, gpu(0)).put(b, ActorPlacement.IN_DRIVER).topology());
        assertChannel(plan.channels().get(1), Transport.STAGED, "AUTO: reader b has no GPU");
        assertEquals(Map.of("localhost/gpu0", 0L), plan.deviceBytes(), "a staged reader without a GPU holds no device memory");

        plan = compile(pipeline(), places().put(a, ActorPlacement.IN_DRIVER).put(b, gpu(0)).topology());
        assertChannel(plan.channels().get(1), Transport.STAGED, "AUTO: writer a has no GPU");
        assertEquals(Map.of("localhost/gpu0", MIB), plan.deviceBytes(), "one staging buffer on the reader's GPU");
    }

    /** A GPU edge to an actor without a GPU is staged, so that actor gets a host Tensor: its parameter must take one. */
    @Test
    void aHostReaderOfAGpuEdgeTakesTheHostCopy() {
        ActorRef<GpuActors.HostReader> h = GraphInternals.actorRef(77, "h", GpuActors.HostReader.class, TestActors.RUNTIME);
        InputNode<String> in = Graph.input();
        Node<DeviceTensor> x = a.bind(Gpu::load, in);
        Topology topology = places().put(a, gpu(0)).put(h, ActorPlacement.IN_DRIVER).topology();
        // A reader without a GPU receives a host Tensor: Graph.hostCopy types the DeviceTensor node as one.
        ExecutionPlan plan = compile(h.bind(GpuActors.HostReader::sum, Graph.hostCopy(x)), topology);
        assertChannel(plan.channels().get(1), Transport.STAGED, "AUTO: reader h has no GPU");
        GraphCompileException e = assertThrows(GraphCompileException.class,
                () -> compile(h.bind(GpuActors.HostReader::strict, a.bind(Gpu::load, Graph.<String>input())), topology));
        assertTrue(e.getMessage().contains("argument 1 of HostReader.strict takes " + DeviceTensor.class.getName()
                + " but upstream a.load returns a DeviceTensor, which h (no GPU) receives as a host "
                + dev.kiln.tensor.Tensor.class.getName()), e.getMessage());
        ActorPlacement withGpu = gpu(1);
        GraphCompileException onGpu = assertThrows(GraphCompileException.class, () -> compile(h.bind(
                GpuActors.HostReader::sum, Graph.hostCopy(a.bind(Gpu::load, Graph.<String>input()))),
                places().put(a, gpu(0)).put(h, withGpu).topology()));
        assertTrue(onGpu.getMessage().contains("takes " + dev.kiln.tensor.Tensor.class.getName()
                + " but upstream a.load returns " + DeviceTensor.class.getName()), onGpu.getMessage());
    }

    @Test
    void slotsThatDoNotFitFallBackToStagedWithTheNumbers() {
        // b's GPU: 99 MiB free, budget 89.1 MiB; NCCL needs 10 MiB of slots + 80 MiB of NCCL buffers there.
        Topology topology = places().put(a, gpu(0)).put(b, gpu("driver", 1, 99 * MIB)).topology();
        ExecutionPlan plan = compile(pipeline(), topology);
        assertChannel(plan.channels().get(1), Transport.STAGED, "AUTO would pick NCCL (b on another GPU "
                + "(localhost/driver/gpu1)), but its receive slots and NCCL buffers do not fit on localhost/gpu1: b "
                + "needs 10485760 B (10 slots x 1048576 B each), NCCL buffers there grow by 83886080 B to 83886080 B "
                + "(1 rank x CompileOptions.NCCL_RANK_BYTES 67108864 B + 1 peer x CompileOptions.NCCL_PEER_BYTES "
                + "16777216 B), 0 B are already held there, budget 93428121 B (free 103809024 B x "
                + "CompileOptions.gpuMemoryFraction 0.9)");
        assertEquals(Map.of("localhost/gpu0", 0L, "localhost/gpu1", MIB), plan.deviceBytes());
        assertEquals(NcclSchedule.NONE, plan.nccl());

        ExecutionPlan whole = GraphCompiler.compile(pipeline(), topology, OPTIONS.gpuMemoryFraction(1.0));
        assertEquals(Transport.NCCL, whole.channels().get(1).transport(), "90 MiB fit in all of 99 MiB");
        assertEquals(Map.of("localhost/gpu0", RANK + PEER, "localhost/gpu1", SLOTS + RANK + PEER), whole.deviceBytes());

        ExecutionPlan fewer = GraphCompiler.compile(pipeline(), topology, OPTIONS.maxInflight(9));
        assertEquals(Transport.NCCL, fewer.channels().get(1).transport(), "89 MiB fit in 89.1 MiB");
    }

    @Test
    void slotsAloneFitButNotWithNcclBuffers() {
        // 20 MiB of budget on b's GPU hold 10 MiB of slots, not the NCCL buffers a new rank brings: AUTO stages,
        // while CUDA IPC (no NCCL) to the same GPU in another JVM fits.
        Topology nccl = places().put(a, gpu(0)).put(b, gpu("driver", 1, 20 * MIB)).topology();
        ExecutionPlan plan = GraphCompiler.compile(pipeline(), nccl, OPTIONS.gpuMemoryFraction(1.0));
        ChannelSpec edge = plan.channels().get(1);
        assertEquals(Transport.STAGED, edge.transport());
        assertTrue(edge.reason().contains("b needs 10485760 B (10 slots x 1048576 B each), NCCL buffers there grow by "
                + "83886080 B to 83886080 B"), edge::reason);
        assertTrue(edge.reason().endsWith("budget 20971520 B (free 20971520 B x CompileOptions.gpuMemoryFraction 1.0)"),
                edge::reason);

        Topology ipc = places().put(a, gpu("w1", 0, GIB)).put(b, gpu("w2", 1, 20 * MIB)).topology();
        ExecutionPlan direct = GraphCompiler.compile(pipeline(), ipc, OPTIONS.gpuMemoryFraction(1.0));
        assertEquals(Transport.CUDA_IPC, direct.channels().get(1).transport());
        assertEquals(SLOTS, direct.deviceBytes().get("localhost/gpu1"));
        assertEquals(0, direct.devices().get(1).ncclBytes());
    }

    @Test
    void theWritersGpuMustHoldItsNcclBuffersToo() {
        // The writer receives nothing, but becoming a rank books NCCL's state and a peer on its GPU.
        Topology topology = places().put(a, gpu("driver", 0, 50 * MIB)).put(b, gpu(1)).topology();
        ExecutionPlan plan = compile(pipeline(), topology);
        assertChannel(plan.channels().get(1), Transport.STAGED, "AUTO would pick NCCL (b on another GPU "
                + "(localhost/driver/gpu1)), but its NCCL buffers do not fit on localhost/gpu0: NCCL buffers there grow "
                + "by 83886080 B to 83886080 B (1 rank x CompileOptions.NCCL_RANK_BYTES 67108864 B + 1 peer x "
                + "CompileOptions.NCCL_PEER_BYTES 16777216 B), 0 B are already held there, budget 47185920 B (free "
                + "52428800 B x CompileOptions.gpuMemoryFraction 0.9)");
        assertEquals(Map.of("localhost/gpu0", 0L, "localhost/gpu1", MIB), plan.deviceBytes());

        InputNode<String> in = Graph.input();
        Node<DeviceTensor> x = a.bind(Gpu::load, in).withTransport(Transport.NCCL);
        rejects(b.bind(Gpu::f, x), topology, OPTIONS, "a.load: Transport.NCCL was asked for, but its NCCL buffers do not "
                + "fit on localhost/gpu0", "raise CompileOptions.gpuMemoryFraction");
    }

    @Test
    void budgetCountsEdgesPlacedBeforeInChannelOrder() {
        // a.load and c.load both go to b on gpu1, which has room for one set of receive slots and one rank with one
        // peer (92 MiB: 10 + 64 + 16 MiB, 2 MiB to spare); c's edge would add 10 MiB of slots and a second peer.
        InputNode<String> in = Graph.input();
        Node<DeviceTensor> out = b.bind(Gpu::add, a.bind(Gpu::load, in), c.bind(Gpu::load, in));
        Topology topology = places().put(a, gpu(0)).put(b, gpu("driver", 1, 92 * MIB)).put(c, gpu(2)).topology();
        ExecutionPlan plan = GraphCompiler.compile(out, topology, OPTIONS.gpuMemoryFraction(1.0));
        assertEquals("a.load", plan.nodes().get(plan.channels().get(1).node()).label());
        assertEquals(Transport.NCCL, plan.channels().get(1).transport());
        assertChannel(plan.channels().get(2), Transport.STAGED, "AUTO would pick NCCL (b on another GPU "
                + "(localhost/driver/gpu1)), but its receive slots and NCCL buffers do not fit on localhost/gpu1: b needs "
                + "10485760 B (10 slots x 1048576 B each), NCCL buffers there grow by 16777216 B to 100663296 B (1 rank x "
                + "CompileOptions.NCCL_RANK_BYTES 67108864 B + 2 peers x CompileOptions.NCCL_PEER_BYTES 16777216 B), "
                + "94371840 B are already held there, budget 96468992 B (free 96468992 B x "
                + "CompileOptions.gpuMemoryFraction 1.0)");
        assertEquals(SLOTS + MIB + RANK + PEER, plan.deviceBytes().get("localhost/gpu1"));
        assertEquals(List.of(1, 2), plan.nccl().ranks(), "c is not a rank: its edge is staged");
        ScheduleChecker.simulate(plan, 4);
    }

    @Test
    void freeMemoryOfADeviceIsTheSmallestReport() {
        // b and c share gpu1; c reports less free memory, which is what the budget uses.
        InputNode<String> in = Graph.input();
        Node<DeviceTensor> x = a.bind(Gpu::load, in);
        Node<?> out = Graph.outputs(b.bind(Gpu::f, x), c.bind(Gpu::f, x));
        Topology topology = places().put(a, gpu(0)).put(b, gpu("w1", 1, GIB)).put(c, gpu("w2", 1, 30 * MIB)).topology();
        ExecutionPlan plan = compile(out, topology);
        DeviceMemory gpu1 = plan.devices().get(1);
        assertEquals(new DeviceMemory("localhost", 1, "gpu1", 30 * MIB, (long) Math.floor(30 * MIB * 0.9), 2 * SLOTS, 0), gpu1);
        assertChannel(plan.channels().get(1), Transport.CUDA_IPC, "AUTO: b in another JVM of localhost, all on GPUs");
    }

    @Test
    void stagedCanBeForcedPerEdge() {
        InputNode<String> in = Graph.input();
        Node<DeviceTensor> x = a.bind(Gpu::load, in).withTransport(Transport.STAGED);
        Node<DeviceTensor> out = c.bind(Gpu::f, b.bind(Gpu::f, x));
        ExecutionPlan plan = compile(out, places().put(a, gpu(0)).put(b, gpu(0)).put(c, gpu(0)).topology());
        assertChannel(plan.channels().get(1), Transport.STAGED, "asked");
        assertChannel(plan.channels().get(2), Transport.GPU_SAME_DEVICE,
                "AUTO: writer and readers in one JVM on localhost/gpu0");
        assertEquals(Map.of("localhost/gpu0", MIB + SLOTS), plan.deviceBytes());
    }

    @Test
    void askedGpuTransportsAreCheckedAndRecorded() {
        InputNode<String> in = Graph.input();
        Node<DeviceTensor> x = a.bind(Gpu::load, in).withTransport(Transport.NCCL);
        ExecutionPlan plan = compile(b.bind(Gpu::f, x), places().put(a, gpu(0)).put(b, gpu(1)).topology());
        assertChannel(plan.channels().get(1), Transport.NCCL, "asked");

        InputNode<String> in2 = Graph.input();
        Node<DeviceTensor> y = a.bind(Gpu::load, in2).withTransport(Transport.CUDA_IPC);
        plan = compile(b.bind(Gpu::f, y), places().put(a, gpu("w1", 0, GIB)).put(b, gpu("w1", 1, GIB)).topology());
        assertChannel(plan.channels().get(1), Transport.CUDA_IPC, "asked");
    }

    @Test
    void askedGpuTransportThatCannotConnectIsRejected() {
        Topology twoGpus = places().put(a, gpu(0)).put(b, gpu(1)).topology();
        InputNode<String> in = Graph.input();
        Node<DeviceTensor> x = a.bind(Gpu::load, in).withTransport(Transport.GPU_SAME_DEVICE);
        rejects(b.bind(Gpu::f, x), twoGpus, OPTIONS, "a.load: Transport.GPU_SAME_DEVICE was asked for, but b "
                + "(localhost/driver/gpu1) is not in a's JVM on its GPU (localhost/driver/gpu0); use Transport.AUTO");

        InputNode<String> in2 = Graph.input();
        Node<DeviceTensor> y = a.bind(Gpu::load, in2).withTransport(Transport.NCCL);
        rejects(b.bind(Gpu::f, GpuActors.any(y)), places().put(a, gpu(0)).put(b, ActorPlacement.IN_DRIVER).topology(), OPTIONS,
                "Transport.NCCL was asked for, but reader b has no GPU; use Transport.AUTO or STAGED");

        InputNode<String> in3 = Graph.input();
        Node<DeviceTensor> z = a.bind(Gpu::load, in3).withTransport(Transport.NCCL);
        rejects(b.bind(Gpu::f, z), places().put(a, gpu(0)).put(b, gpu("driver", 1, MIB)).topology(), OPTIONS,
                "Transport.NCCL was asked for, but its receive slots and NCCL buffers do not fit on localhost/gpu1: b needs "
                + "10485760 B (10 slots x 1048576 B each), NCCL buffers there grow by 83886080 B",
                "raise CompileOptions.gpuMemoryFraction, lower bufferBytes or maxInflight, or use Transport.AUTO or STAGED");

        InputNode<String> in4 = Graph.input();
        Node<DeviceTensor> w = a.bind(Gpu::load, in4).withTransport(Transport.NCCL);
        rejects(b.bind(Gpu::f, w), places().put(a, gpu(0)).put(b, gpu("w2", 0, GIB)).topology(), OPTIONS,
                "Transport.NCCL was asked for, but NCCL cannot hold two ranks on one GPU: a and b both use localhost/gpu0");
    }

    @Test
    void hostTransportsAreRejectedForDeviceTensorsAndGpuTransportsForHostValues() {
        Topology topology = places().put(a, gpu(0)).put(b, gpu(0)).topology();
        for (Transport host : List.of(Transport.IN_PROCESS, Transport.SHARED_MEMORY)) {
            InputNode<String> in = Graph.input();
            Node<DeviceTensor> x = a.bind(Gpu::load, in).withTransport(host);
            rejects(b.bind(Gpu::f, x), topology, OPTIONS, "a.load: Transport." + host + " was asked for, but a.load "
                    + "returns a DeviceTensor (device memory), which it cannot carry");
        }
        for (Transport device : List.of(Transport.GPU_SAME_DEVICE, Transport.CUDA_IPC, Transport.NCCL, Transport.STAGED)) {
            InputNode<String> in = Graph.input();
            Node<String> x = a.bind(Gpu::label, in).withTransport(device);
            rejects(b.bind(Gpu::load, x), topology, OPTIONS, "a.label: Transport." + device + " carries DeviceTensor "
                    + "values, but a.label is declared to return java.lang.String; declare it to return "
                    + "dev.kiln.tensor.DeviceTensor, or use Transport.AUTO, IN_PROCESS, SHARED_MEMORY or AERON_UDP");
        }
    }

    @Test
    void gpuTransportOnTheInputIsRejected() {
        InputNode<String> in = Graph.input();
        in.withTransport(Transport.NCCL);
        rejects(a.bind(Gpu::load, in), places().put(a, gpu(0)).topology(), OPTIONS, "input: Transport.NCCL carries "
                + "DeviceTensor values, but the graph's input is a host value; use Transport.AUTO, IN_PROCESS, "
                + "SHARED_MEMORY or AERON_UDP");
    }

    @Test
    void twoRanksOnOneGpuFallBackToStaged() {
        // a (gpu0) sends to b (gpu1) by NCCL; c is also on gpu0, so its edge to b cannot join the communicator.
        InputNode<String> in = Graph.input();
        Node<DeviceTensor> out = b.bind(Gpu::add, a.bind(Gpu::load, in), c.bind(Gpu::load, in));
        ExecutionPlan plan = compile(out, places().put(a, gpu(0)).put(b, gpu(1)).put(c, gpu(0)).topology());
        assertEquals(Transport.NCCL, plan.channels().get(1).transport());
        assertChannel(plan.channels().get(2), Transport.STAGED, "AUTO would pick NCCL (b on another GPU "
                + "(localhost/driver/gpu1)), but NCCL cannot hold two ranks on one GPU: a and c both use localhost/gpu0");
    }

    @Test
    void driverCannotBeARank() {
        InputNode<String> in = Graph.input();
        Node<DeviceTensor> out = a.bind(Gpu::load, in);
        Topology topology = new Topology(gpu(1), Map.of(a.id(), gpu(0)));
        ExecutionPlan plan = compile(out, topology);
        assertChannel(plan.channels().get(1), Transport.STAGED, "AUTO would pick NCCL (driver on another GPU "
                + "(localhost/driver/gpu1)), but the driver reads it and cannot be an NCCL rank");
        assertEquals(List.of("localhost/gpu0", "localhost/gpu1"), List.copyOf(plan.deviceBytes().keySet()));
    }

    @Test
    void stagingBetweenHostsIsRejected() {
        InputNode<String> in = Graph.input();
        Node<DeviceTensor> x = a.bind(Gpu::load, in);
        Topology topology = places().put(a, gpu(0)).put(b, new ActorPlacement("host2", "w", 0, MIB)).topology();
        rejects(b.bind(Gpu::toHost, x), topology, OPTIONS, "a.load: Transport.STAGED (AUTO would pick NCCL (b on "
                + "another host (host2/w/gpu0)), but its receive slots and NCCL buffers do not fit on host2/gpu0",
                "staging between hosts is not supported yet");
    }

    @Test
    void fanOutSendsToEveryReaderInOneGroup() {
        InputNode<String> in = Graph.input();
        Node<DeviceTensor> x = a.bind(Gpu::load, in);
        Node<DeviceTensor> out = d.bind(Gpu::add3, b.bind(Gpu::f, x), c.bind(Gpu::f, x), x);
        ExecutionPlan plan = compile(out, places().put(a, gpu(0)).put(b, gpu(1)).put(c, gpu(2)).put(d, gpu(3)).topology());
        assertEquals(List.of(b.id(), c.id(), d.id()), plan.channels().get(1).readers());
        assertChannel(plan.channels().get(1), Transport.NCCL, "AUTO: b on another GPU (localhost/driver/gpu1)");
        assertEquals(List.of(1, 2, 3, 4), plan.nccl().ranks());
        assertEquals(List.of(new CommGroup(List.of(new CommOp(CommOp.Kind.SEND, 1, 1),
                new CommOp(CommOp.Kind.SEND, 1, 2), new CommOp(CommOp.Kind.SEND, 1, 3)))), plan.nccl().groups().get(0));
        assertEquals("group(SEND c1 -> r1, SEND c1 -> r2, SEND c1 -> r3)", plan.nccl().groups().get(0).getFirst().toString());
        assertEquals(Map.of("localhost/gpu0", RANK + 3 * PEER, "localhost/gpu1", SLOTS + RANK + 2 * PEER,
                "localhost/gpu2", SLOTS + RANK + 2 * PEER, "localhost/gpu3", 3 * SLOTS + RANK + 3 * PEER),
                plan.deviceBytes(), "a and d talk to three peers, b and c to a and d");
        assertEquals(15, ScheduleChecker.simulate(plan, 3));
    }

    @Test
    void mixedCpuAndGpuGraph() {
        // input -> t.upper (CPU) -> a.load (gpu0) -> b.f (gpu1) -> h.toHost (CPU) -> driver
        ActorRef<Text> t = TestActors.text(5, "t");
        ActorRef<Gpu> h = gpuActor(6, "h");
        InputNode<String> in = Graph.input();
        Node<String> out = h.bind(Gpu::toHost, GpuActors.any(b.bind(Gpu::f, a.bind(Gpu::load, t.bind(Text::upper, in)))));
        Topology topology = places().put(t, ActorPlacement.IN_DRIVER).put(a, gpu(0)).put(b, gpu(1))
                .put(h, new ActorPlacement("localhost", "w1")).topology();
        ExecutionPlan plan = compile(out, topology);
        assertEquals(List.of(Transport.IN_PROCESS, Transport.IN_PROCESS, Transport.NCCL, Transport.STAGED,
                Transport.SHARED_MEMORY), plan.channels().stream().map(ChannelSpec::transport).toList());
        assertEquals("AUTO: reader h has no GPU", plan.channels().get(3).reason());
        assertEquals(List.of(a.id(), b.id()), plan.nccl().ranks());
        assertEquals(3, ScheduleChecker.simulate(plan, 3));
    }

    @Test
    void cpuEdgesBetweenGpusOfOneJvmStayInProcess() {
        InputNode<String> in = Graph.input();
        Node<String> out = b.bind(Gpu::label, a.bind(Gpu::label, in));
        ExecutionPlan plan = compile(out, places().put(a, gpu(0)).put(b, gpu(1)).topology());
        assertChannel(plan.channels().get(1), Transport.IN_PROCESS, "AUTO: writer and readers in one JVM");
        assertEquals(Map.of("localhost/gpu0", 0L, "localhost/gpu1", 0L), plan.deviceBytes());
    }

    @Test
    void cpuPlansHaveNoDevicesAndNoNccl() {
        InputNode<String> in = Graph.input();
        ExecutionPlan plan = compile(b.bind(Gpu::label, a.bind(Gpu::label, in)),
                places().put(a, ActorPlacement.IN_DRIVER).put(b, ActorPlacement.IN_DRIVER).topology());
        assertEquals(List.of(), plan.devices());
        assertEquals(Map.of(), plan.deviceBytes());
        assertEquals(NcclSchedule.NONE, plan.nccl());
    }

    @Test
    void slotBytesSaturateInsteadOfOverflowing() {
        CompileOptions huge = OPTIONS.bufferBytes(Long.MAX_VALUE / 2);
        ExecutionPlan plan = GraphCompiler.compile(pipeline(), places().put(a, gpu(0)).put(b, gpu(1)).topology(), huge);
        assertEquals(Transport.STAGED, plan.channels().get(1).transport());
        assertTrue(plan.channels().get(1).reason().contains("b needs 9223372036854775807 B"), plan.channels().get(1)::reason);
    }

    // ---- devices by UUID ----

    @Test
    void oneGpuNumberedDifferentlyByTwoJvmsIsOneDevice() {
        // a's JVM sees the GPU as gpu0, b's as gpu1: one device, one budget (the smaller report), no peer access needed.
        Topology topology = places().put(a, gpu("w1", 0, "GPU-A", GIB)).put(b, gpu("w2", 1, "GPU-A", 50 * MIB))
                .topology(PeerAccess.NONE);
        ExecutionPlan plan = compile(pipeline(), topology);
        assertChannel(plan.channels().get(1), Transport.CUDA_IPC, "AUTO: b in another JVM of localhost, all on GPUs");
        assertEquals(List.of(new DeviceMemory("localhost", 0, "GPU-A", 50 * MIB, (long) Math.floor(50 * MIB * 0.9),
                SLOTS, 0)), plan.devices());
        assertEquals(Map.of("localhost/gpu0[GPU-A]", SLOTS), plan.deviceBytes(), "one GPU with two indices: named by UUID");
        assertTrue(plan.toString().contains("actor a @ localhost/w1/gpu0[GPU-A]:\n"), plan::toString);
        assertTrue(plan.toString().contains("actor b @ localhost/w2/gpu1[GPU-A]:\n"), plan::toString);
        assertTrue(plan.toString().contains("""
                devices:
                  localhost/gpu0[GPU-A]: holds 10485760 B, budget 47185920 B of 52428800 B free
                """), plan::toString);

        InputNode<String> in = Graph.input();
        Node<DeviceTensor> x = a.bind(Gpu::load, in).withTransport(Transport.GPU_SAME_DEVICE);
        rejects(b.bind(Gpu::f, x), topology, OPTIONS, "Transport.GPU_SAME_DEVICE was asked for, but b "
                + "(localhost/w2/gpu1[GPU-A]) is not in a's JVM on its GPU (localhost/w1/gpu0[GPU-A]); use Transport.AUTO");
    }

    @Test
    void twoRanksOnOneGpuAreFoundByUuidWhateverTheIndices() {
        // a (gpu0 in the driver) and c (gpu1 in w2) are one GPU; both would be ranks sending to b.
        InputNode<String> in = Graph.input();
        Node<DeviceTensor> out = b.bind(Gpu::add, a.bind(Gpu::load, in), c.bind(Gpu::load, in));
        Topology topology = places().put(a, gpu("driver", 0, "GPU-A", GIB)).put(b, gpu("driver", 2, "GPU-B", GIB))
                .put(c, gpu("w2", 1, "GPU-A", GIB)).topology(PeerAccess.NONE);
        ExecutionPlan plan = compile(out, topology);
        assertChannel(plan.channels().get(1), Transport.NCCL, "AUTO: b on another GPU (localhost/driver/gpu2)");
        assertChannel(plan.channels().get(2), Transport.STAGED, "AUTO would pick NCCL (b in another JVM of localhost "
                + "on gpu2, without peer access to gpu1[GPU-A]), but NCCL cannot hold two ranks on one GPU: a and c both "
                + "use GPU GPU-A of localhost (gpu0 in a's JVM, gpu1 in c's)");
    }

    @Test
    void twoGpusWithOneIndexInTwoJvmsAreTwoDevices() {
        // a and c each see their own GPU as gpu0: two devices, so both may be NCCL ranks, each with its own budget.
        InputNode<String> in = Graph.input();
        Node<DeviceTensor> out = b.bind(Gpu::add, a.bind(Gpu::load, in), c.bind(Gpu::load, in));
        Topology topology = places().put(a, gpu("driver", 0, "GPU-A", GIB)).put(b, gpu("driver", 1, "GPU-B", GIB))
                .put(c, gpu("w2", 0, "GPU-C", 200 * MIB)).topology(PeerAccess.NONE);
        ExecutionPlan plan = compile(out, topology);
        assertChannel(plan.channels().get(1), Transport.NCCL, "AUTO: b on another GPU (localhost/driver/gpu1)");
        assertChannel(plan.channels().get(2), Transport.NCCL, "AUTO: b in another JVM of localhost on gpu1, without "
                + "peer access to gpu0[GPU-C]");
        assertEquals(List.of(a.id(), c.id(), b.id()), plan.nccl().ranks());
        assertEquals(List.of(new DeviceMemory("localhost", 0, "GPU-A", GIB, (long) Math.floor(GIB * 0.9), RANK + PEER,
                        RANK + PEER),
                new DeviceMemory("localhost", 0, "GPU-C", 200 * MIB, (long) Math.floor(200 * MIB * 0.9), RANK + PEER,
                        RANK + PEER),
                new DeviceMemory("localhost", 1, "GPU-B", GIB, (long) Math.floor(GIB * 0.9), 2 * SLOTS + RANK + 2 * PEER,
                        RANK + 2 * PEER)), plan.devices());
        assertEquals(List.of("localhost/gpu0[GPU-A]", "localhost/gpu0[GPU-C]", "localhost/gpu1"),
                List.copyOf(plan.deviceBytes().keySet()));
        assertTrue(plan.toString().contains("  localhost/gpu0[GPU-C]: holds 83886080 B (NCCL 83886080 B), budget "
                + "188743680 B of 209715200 B free\n"), plan::toString);
        assertEquals(2 * 3, ScheduleChecker.simulate(plan, 3));

        // With the same UUID they were one GPU, and c's edge had to be staged.
        Topology oneGpu = places().put(a, gpu("driver", 0, "GPU-A", GIB)).put(b, gpu("driver", 1, "GPU-B", GIB))
                .put(c, gpu("w2", 0, "GPU-A", GIB)).topology(PeerAccess.NONE);
        InputNode<String> in2 = Graph.input();
        Node<DeviceTensor> out2 = b.bind(Gpu::add, a.bind(Gpu::load, in2), c.bind(Gpu::load, in2));
        assertEquals(Transport.STAGED, compile(out2, oneGpu).channels().get(2).transport());
    }

    // ---- peer access ----

    /** a (w1, gpu0) -> b (w2, gpu1): two JVMs, two GPUs. */
    private ExecutionPlan twoJvmsTwoGpus(PeerAccess peerAccess, long freeOfB) {
        return compile(pipeline(), places().put(a, gpu("w1", 0, GIB)).put(b, gpu("w2", 1, freeOfB)).topology(peerAccess));
    }

    @Test
    void cudaIpcBetweenTwoGpusNeedsPeerAccess() {
        assertChannel(twoJvmsTwoGpus(PeerAccess.ALL, GIB).channels().get(1), Transport.CUDA_IPC,
                "AUTO: b in another JVM of localhost, all on GPUs");
        assertChannel(twoJvmsTwoGpus(PeerAccess.of(Set.of(new Link("localhost", "gpu1", "gpu0"))), GIB).channels().get(1),
                Transport.CUDA_IPC, "AUTO: b in another JVM of localhost, all on GPUs");

        for (PeerAccess without : List.of(PeerAccess.NONE, PeerAccess.of(Set.of(new Link("host2", "gpu0", "gpu1"))),
                PeerAccess.of(Set.of(new Link("localhost", "gpu0", "gpu2"))))) {
            ExecutionPlan plan = twoJvmsTwoGpus(without, GIB);
            assertChannel(plan.channels().get(1), Transport.NCCL,
                    "AUTO: b in another JVM of localhost on gpu1, without peer access to gpu0");
            assertEquals(List.of(a.id(), b.id()), plan.nccl().ranks());
            assertEquals(1, ScheduleChecker.simulate(plan, 1));
        }
    }

    @Test
    void withoutPeerAccessNcclFallsBackToStagedForTheUsualReasons() {
        ExecutionPlan plan = twoJvmsTwoGpus(PeerAccess.NONE, 50 * MIB);
        assertChannel(plan.channels().get(1), Transport.STAGED, "AUTO would pick NCCL (b in another JVM of localhost "
                + "on gpu1, without peer access to gpu0), but its receive slots and NCCL buffers do not fit on "
                + "localhost/gpu1: b needs 10485760 B (10 slots x 1048576 B each), NCCL buffers there grow by 83886080 B "
                + "to 83886080 B (1 rank x CompileOptions.NCCL_RANK_BYTES 67108864 B + 1 peer x "
                + "CompileOptions.NCCL_PEER_BYTES 16777216 B), 0 B are already held there, budget 47185920 B (free "
                + "52428800 B x CompileOptions.gpuMemoryFraction 0.9)");
        assertChannel(twoJvmsTwoGpus(PeerAccess.ALL, 50 * MIB).channels().get(1), Transport.CUDA_IPC,
                "AUTO: b in another JVM of localhost, all on GPUs");
    }

    @Test
    void askedCudaIpcWithoutPeerAccessIsRejected() {
        InputNode<String> in = Graph.input();
        Node<DeviceTensor> x = a.bind(Gpu::load, in).withTransport(Transport.CUDA_IPC);
        rejects(b.bind(Gpu::f, x), places().put(a, gpu("w1", 0, GIB)).put(b, gpu("w2", 1, GIB)).topology(PeerAccess.NONE),
                OPTIONS, "a.load: Transport.CUDA_IPC was asked for, but b (localhost/w2/gpu1) is in another JVM on a GPU "
                        + "without peer access to a's (localhost/w1/gpu0), and cudaIpcOpenMemHandle maps another device's "
                        + "memory only through peer access; use Transport.AUTO (NCCL, or STAGED), or place b on a's GPU "
                        + "or one with peer access to it");

        // In the writer's JVM the reader's slots are not mapped from another process: no peer access needed.
        InputNode<String> in2 = Graph.input();
        Node<DeviceTensor> y = a.bind(Gpu::load, in2).withTransport(Transport.CUDA_IPC);
        ExecutionPlan plan = compile(b.bind(Gpu::f, y), places().put(a, gpu("w1", 0, GIB)).put(b, gpu("w1", 1, GIB))
                .topology(PeerAccess.NONE));
        assertChannel(plan.channels().get(1), Transport.CUDA_IPC, "asked");

        // Nor on one GPU seen from two JVMs.
        InputNode<String> in3 = Graph.input();
        Node<DeviceTensor> z = a.bind(Gpu::load, in3).withTransport(Transport.CUDA_IPC);
        plan = compile(b.bind(Gpu::f, z), places().put(a, gpu("w1", 0, GIB)).put(b, gpu("w2", 0, GIB))
                .topology(PeerAccess.NONE));
        assertChannel(plan.channels().get(1), Transport.CUDA_IPC, "asked");
    }

    @Test
    void fanOutWithOneReaderWithoutPeerAccessIsNccl() {
        // b (w2, gpu1) has peer access to a's gpu0, e (w3, gpu2) has not: the whole edge is NCCL, for e.
        ActorRef<Gpu> e = gpuActor(5, "e");
        InputNode<String> in = Graph.input();
        Node<DeviceTensor> x = a.bind(Gpu::load, in);
        Node<?> out = Graph.outputs(b.bind(Gpu::f, x), e.bind(Gpu::f, x));
        Topology topology = places().put(a, gpu("w1", 0, GIB)).put(b, gpu("w2", 1, GIB)).put(e, gpu("w3", 2, GIB))
                .topology(PeerAccess.of(Set.of(new Link("localhost", "gpu0", "gpu1"))));
        ExecutionPlan plan = compile(out, topology);
        assertChannel(plan.channels().get(1), Transport.NCCL,
                "AUTO: e in another JVM of localhost on gpu2, without peer access to gpu0");
        assertEquals(List.of(a.id(), b.id(), e.id()), plan.nccl().ranks());
    }

    /** Every GPU transport in one plan: NCCL fan-out, CUDA IPC fan-in, same device, staged to the driver. */
    private ExecutionPlan everyTransport() {
        ActorRef<Gpu> e = gpuActor(5, "e");
        InputNode<String> in = Graph.input();
        Node<DeviceTensor> x = a.bind(Gpu::load, in);
        Node<DeviceTensor> u = c.bind(Gpu::add, b.bind(Gpu::f, x), e.bind(Gpu::f, x));
        Node<DeviceTensor> out = d.bind(Gpu::scale, u, Graph.constant("2"));
        Topology topology = places().put(a, gpu(0)).put(b, gpu(1)).put(e, gpu(2)).put(c, gpu("w1", 1, 200 * MIB))
                .put(d, gpu("w1", 1, 200 * MIB)).topology();
        return GraphCompiler.compile(out, topology, OPTIONS.maxInflight(4));
    }

    @Test
    void gpuPlanAsText() {
        assertEquals("""
                ExecutionPlan: 5 actors, 6 channels, 1 input arg, 1 output, maxInflight 4
                channels:
                  c0 input: driver -> [a], IN_PROCESS (AUTO: writer and readers in one JVM), 4 slots
                  c1 a.load: a -> [b, e], NCCL (AUTO: b on another GPU (localhost/driver/gpu1)), 4 slots
                  c2 b.f: b -> [c], CUDA_IPC (AUTO: c in another JVM of localhost, all on GPUs), 4 slots
                  c3 e.f: e -> [c], CUDA_IPC (AUTO: c in another JVM of localhost, all on GPUs), 4 slots
                  c4 c.add: c -> [d], GPU_SAME_DEVICE (AUTO: writer and readers in one JVM on localhost/gpu1), 4 slots
                  c5 d.scale: d -> [driver], STAGED (AUTO: the driver has no GPU), 4 slots
                actor a @ localhost/driver/gpu0:
                  READ    c0 -> l0
                  COMPUTE Gpu.load(l0) -> l1
                  WRITE   l1 -> c1
                actor b @ localhost/driver/gpu1:
                  READ    c1 -> l0
                  COMPUTE Gpu.f(l0) -> l1
                  WRITE   l1 -> c2
                actor e @ localhost/driver/gpu2:
                  READ    c1 -> l0
                  COMPUTE Gpu.f(l0) -> l1
                  WRITE   l1 -> c3
                actor c @ localhost/w1/gpu1:
                  READ    c2 -> l0
                  READ    c3 -> l1
                  COMPUTE Gpu.add(l0, l1) -> l2
                  WRITE   l2 -> c4
                actor d @ localhost/w1/gpu1:
                  READ    c4 -> l0
                  COMPUTE Gpu.scale(l0, "2") -> l1
                  WRITE   l1 -> c5
                driver: WRITE c0, READ c5
                devices:
                  localhost/gpu0: holds 100663296 B (NCCL 100663296 B), budget 15461882265 B of 17179869184 B free
                  localhost/gpu1: holds 100663296 B (NCCL 83886080 B), budget 188743680 B of 209715200 B free
                  localhost/gpu2: holds 88080384 B (NCCL 83886080 B), budget 15461882265 B of 17179869184 B free
                nccl: 3 ranks
                  r0 a: group(SEND c1 -> r1, SEND c1 -> r2)
                  r1 b: RECV c1 <- r0
                  r2 e: RECV c1 <- r0
                """, everyTransport().toString());
    }

    @Test
    void gpuPlanAsDot() {
        String dot = everyTransport().toDot();
        assertTrue(dot.contains("""
                  subgraph cluster_a1 {
                    label="a (gpu0)";
                    n1 [label="a.load"];
                  }
                """), dot);
        assertTrue(dot.contains("  n1 -> n2 [label=\"c1 NCCL\"];\n"), dot);
        assertTrue(dot.contains("  n2 -> n4 [label=\"c2 CUDA_IPC\"];\n"), dot);
        assertTrue(dot.contains("  n4 -> n5 [label=\"c4 GPU_SAME_DEVICE\"];\n"), dot);
        assertTrue(dot.contains("  n5 -> n_out [label=\"c5 STAGED\"];\n"), dot);
    }

    @Test
    void everyTransportPlanCompletes() {
        assertEquals(2 * 5, ScheduleChecker.simulate(everyTransport(), 5));
    }
}
