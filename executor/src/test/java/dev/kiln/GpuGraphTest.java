package dev.kiln;

import dev.kiln.GpuActors.Producer;
import dev.kiln.GpuActors.Reader;
import dev.kiln.GpuActors.Scaler;
import dev.kiln.compiler.ActorDeathPolicy;
import dev.kiln.compiler.CompileOptions;
import dev.kiln.compiler.ExecutionPlan;
import dev.kiln.compiler.ExecutionPlan.ChannelSpec;
import dev.kiln.compiler.IdleMode;
import dev.kiln.executor.Gpus;
import dev.kiln.graph.ActorRef;
import dev.kiln.graph.Graph;
import dev.kiln.graph.InputNode;
import dev.kiln.graph.Node;
import dev.kiln.graph.Transport;
import dev.kiln.tensor.DeviceTensor;
import dev.kiln.transport.gpu.SimulatedGpus;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;

import static dev.kiln.GpuActors.GET;
import static dev.kiln.GpuActors.N;
import static dev.kiln.GpuActors.affine;
import static dev.kiln.GpuActors.made;
import static dev.kiln.GpuActors.pipelined;
import static dev.kiln.GpuActors.transport;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * GPU graphs end to end on simulated GPUs ({@link KilnOptions#simulatedGpus}): every GPU transport in one JVM, across
 * child JVMs and across joined worker processes, with kernels launched by the actors on their own streams, exact
 * contents over 10,000 pipelined executions; staging when the memory budget is small; all-reduce nodes; failures that
 * must fail an execution or a graph, never hang it.
 */
@Timeout(value = 300, unit = TimeUnit.SECONDS)
class GpuGraphTest {

    private static final CompileOptions OPTIONS = CompileOptions.defaults().maxInflight(8).bufferBytes(4L * N)
            .idle(IdleMode.BACKOFF).getTimeout(GET).submitTimeout(GET);

    @TempDir
    Path tmp;

    private final List<AutoCloseable> closing = new ArrayList<>();

    @AfterEach
    void close() throws Exception {
        for (AutoCloseable c : closing.reversed()) {
            c.close();
        }
    }

    private Kiln kiln(int gpus, long bytesEach) {
        Kiln kiln = Kiln.local(KilnOptions.defaults().simulatedGpus(gpus, bytesEach).runDirectory(tmp.resolve("run"))
                .shmDirectory(tmp));
        closing.add(kiln);
        return kiln;
    }

    /**
     * Same device, NCCL between two GPUs of one JVM, and staging to an actor without a GPU, in one graph; every result
     * exact over ten thousand pipelined executions.
     */
    @Test
    void everyTransportOfOneJvmGivesExactResultsOverTenThousandPipelinedExecutions() throws Exception {
        Kiln kiln = kiln(2, 256L << 20);
        ActorRef<Producer> p = kiln.actor(Producer::new, ActorOptions.defaults().gpu(0).name("p"));
        ActorRef<Scaler> s = kiln.actor(Scaler::new, ActorOptions.defaults().gpu(0).name("s"));
        ActorRef<Reader> r = kiln.actor(Reader::new, ActorOptions.defaults().gpu(1).name("r"));
        ActorRef<Reader> h = kiln.actor(Reader::new, ActorOptions.defaults().name("h"));
        InputNode<Integer> in = Graph.input();
        Node<DeviceTensor> x = p.bind(Producer::make, in);
        Node<float[]> viaNccl = r.bind(Reader::download, s.bind(Scaler::apply, x));
        Node<float[]> viaStaging = h.bind(Reader::host, Graph.hostCopy(s.bind(Scaler::again, x)));
        try (CompiledGraph<Integer, List<Object>> g = kiln.compile(in, Graph.outputs(List.of(viaNccl, viaStaging)), OPTIONS)) {
            ExecutionPlan plan = g.plan();
            assertEquals(Transport.GPU_SAME_DEVICE, transport(plan, 1), plan::toString);
            assertTrue(plan.channels().stream().anyMatch(c -> c.transport() == Transport.NCCL), plan::toString);
            assertTrue(plan.channels().stream().anyMatch(c -> c.transport() == Transport.STAGED
                    && c.reason().equals("AUTO: reader h has no GPU")), plan::toString);
            pipelined(g, 10_000, 8, (e, out) -> {
                float[] want = affine(made(e), 2, 1);
                assertArrayEquals(want, (float[]) out.get(0), "through NCCL, execution " + e);
                assertArrayEquals(want, (float[]) out.get(1), "staged, execution " + e);
            });
        }
    }

    /** Receive slots that do not fit the device's budget: AUTO stages the edge, says why, and the results stay exact. */
    @Test
    void aSmallBudgetStagesTheEdgeAndSaysWhy() throws Exception {
        Kiln kiln = kiln(1, 4L << 20);
        ActorRef<Producer> p = kiln.actor(Producer::new, ActorOptions.defaults().gpu(0));
        ActorRef<Scaler> s = kiln.actor(Scaler::new, ActorOptions.defaults().gpu(0));
        ActorRef<Reader> r = kiln.actor(Reader::new, ActorOptions.defaults().gpu(0));
        InputNode<Integer> in = Graph.input();
        CompileOptions big = OPTIONS.bufferBytes(1 << 20); // 8 slots of 1 MiB per edge: more than 90 % of 4 MiB
        try (CompiledGraph<Integer, float[]> g = kiln.compile(in, r.bind(Reader::download, s.bind(Scaler::apply,
                p.bind(Producer::make, in))), big)) {
            ChannelSpec c1 = g.plan().channels().get(1);
            assertEquals(Transport.STAGED, c1.transport(), g.plan()::toString);
            assertTrue(c1.reason().startsWith("AUTO would pick GPU_SAME_DEVICE") && c1.reason().contains("do not fit"),
                    c1.reason());
            pipelined(g, 500, 8, (e, out) -> assertArrayEquals(affine(made(e), 2, 1), out, "execution " + e));
        }
    }

    /** The all-reduce node sums every member's tensor exactly, on 2, 3 and 4 ranks, every member getting the sum. */
    @Test
    void allReduceGivesTheExactSumOnTwoThreeAndFourRanks() throws Exception {
        Kiln kiln = kiln(4, 128L << 20);
        List<ActorRef<Producer>> producers = new ArrayList<>();
        List<ActorRef<Reader>> readers = new ArrayList<>();
        for (int k = 0; k < 4; k++) {
            float scale = k + 1;
            producers.add(kiln.actor(() -> new Producer(scale), ActorOptions.defaults().gpu(k).name("p" + k)));
            readers.add(kiln.actor(Reader::new, ActorOptions.defaults().gpu(k).name("r" + k)));
        }
        for (int members = 2; members <= 4; members++) {
            InputNode<Integer> in = Graph.input();
            List<Node<DeviceTensor>> inputs = new ArrayList<>();
            for (int k = 0; k < members; k++) {
                inputs.add(producers.get(k).bind(Producer::scaled, in));
            }
            List<Node<DeviceTensor>> sums = Graph.allReduce(inputs);
            List<Node<?>> outs = new ArrayList<>();
            for (int k = 0; k < members; k++) {
                outs.add(readers.get(k).bind(Reader::download, sums.get(k)));
            }
            int m = members;
            float factor = m * (m + 1) / 2f; // sum of the scales 1..m
            try (CompiledGraph<Integer, List<Object>> g = kiln.compile(in, Graph.outputs(List.of(outs.toArray(Node<?>[]::new))),
                    OPTIONS)) {
                assertEquals(1, g.plan().collectives().size(), g.plan()::toString);
                pipelined(g, 200, 8, (e, out) -> {
                    float[] want = affine(made(e), factor, 0);
                    for (int k = 0; k < m; k++) {
                        assertArrayEquals(want, (float[]) out.get(k), m + " ranks, member " + k + ", execution " + e);
                    }
                });
            }
        }
    }

    /** A member whose method throws fails that execution on every member, not a hang; the next one is exact. */
    @Test
    void aFailedInputFailsTheAllReduceOnEveryMemberAndTheNextExecutionRuns() throws Exception {
        Kiln kiln = kiln(2, 128L << 20);
        ActorRef<Producer> a = kiln.actor(() -> new Producer(1), ActorOptions.defaults().gpu(0));
        ActorRef<Producer> b = kiln.actor(() -> new Producer(2), ActorOptions.defaults().gpu(1));
        ActorRef<Reader> ra = kiln.actor(Reader::new, ActorOptions.defaults().gpu(0));
        ActorRef<Reader> rb = kiln.actor(Reader::new, ActorOptions.defaults().gpu(1));
        InputNode<Integer> in = Graph.input();
        List<Node<DeviceTensor>> sums = Graph.allReduce(List.of(a.bind(Producer::scaled, in),
                b.bind(Producer::failOnOdd, in)));
        try (CompiledGraph<Integer, List<Object>> g = kiln.compile(in, Graph.outputs(List.of(ra.bind(Reader::download, sums.get(0)),
                rb.bind(Reader::download, sums.get(1)))), OPTIONS)) {
            for (int e = 0; e < 20; e++) {
                if (e % 2 == 1) {
                    int seq = e;
                    ActorTaskException failed = assertThrows(ActorTaskException.class, () -> g.execute(seq).get(GET));
                    assertTrue(failed.getMessage().contains("odd execution " + seq)
                            || failed.getMessage().contains("other member"), failed.getMessage());
                } else {
                    List<Object> out = g.execute(e).get(GET);
                    assertArrayEquals(affine(made(e), 3, 0), (float[]) out.get(0));
                    assertArrayEquals(affine(made(e), 3, 0), (float[]) out.get(1));
                }
            }
        }
    }

    /** A tensor returned on another device than the actor's fails its execution naming both devices. */
    @Test
    void aTensorOnTheWrongDeviceFailsItsExecutionNamingBothDevices() throws Exception {
        Kiln kiln = kiln(2, 64L << 20);
        ActorRef<Producer> p = kiln.actor(Producer::new, ActorOptions.defaults().gpu(0));
        ActorRef<Reader> r = kiln.actor(Reader::new, ActorOptions.defaults().gpu(0));
        InputNode<Integer> in = Graph.input();
        try (CompiledGraph<Integer, float[]> g = kiln.compile(in, r.bind(Reader::download, p.bind(Producer::wrongDevice, in)),
                OPTIONS)) {
            assertArrayEquals(made(0), g.execute(0).get(GET));
            ActorTaskException e = assertThrows(ActorTaskException.class, () -> g.execute(1).get(GET));
            assertTrue(e.getMessage().contains("gpu0") && e.getMessage().contains("gpu1"), e.getMessage());
            assertArrayEquals(made(2), g.execute(2).get(GET), "the graph goes on");
        }
    }

    /** A GPU actor keeps its device current and owns a stream; a thread it starts begins on device 0, as in CUDA. */
    @Test
    void aGpuActorKeepsItsDeviceCurrentAndOwnsAStream() throws Exception {
        Kiln kiln = kiln(2, 64L << 20);
        ActorRef<Reader> r = kiln.actor(Reader::new, ActorOptions.defaults().gpu(1));
        assertArrayEquals(new long[] {1, 1, 1, 1}, kiln.call(r, Reader::where).get(30, TimeUnit.SECONDS));
        assertEquals(0, kiln.call(r, Reader::newThreadDevice).get(30, TimeUnit.SECONDS));
        ActorRef<Reader> cpu = kiln.actor(Reader::new);
        ExecutionException e = assertThrows(ExecutionException.class,
                () -> kiln.call(cpu, Reader::noGpu).get(30, TimeUnit.SECONDS));
        assertTrue(e.getCause().getCause().getMessage().contains("ActorOptions.gpu(n)"), e.getCause().toString());
        ActorCreationException none = assertThrows(ActorCreationException.class,
                () -> kiln.actor(Reader::new, ActorOptions.defaults().gpu(2)));
        assertTrue(none.getMessage().contains("has 2 GPUs"), none.getMessage());
    }

    /**
     * Across child JVMs of one host: CUDA IPC between JVMs on two GPUs, staging to an actor without a GPU, CUDA IPC back
     * into the driver's JVM, and NCCL when asked; a GPU actor in a child JVM whose edges are all host edges works too.
     */
    @Test
    void acrossChildJvmsCudaIpcStagingAndNcclGiveExactResults() throws Exception {
        Kiln kiln = kiln(2, 256L << 20);
        ActorRef<Producer> p = kiln.actor(Producer::new, ActorOptions.process("ga").gpu(0).name("p"));
        ActorRef<Scaler> s = kiln.actor(Scaler::new, ActorOptions.process("gb").gpu(1).name("s"));
        ActorRef<Reader> r = kiln.actor(Reader::new, ActorOptions.defaults().gpu(1).name("r"));
        ActorRef<Reader> h = kiln.actor(Reader::new, ActorOptions.process("ga").name("h"));
        InputNode<Integer> in = Graph.input();
        Node<DeviceTensor> x = p.bind(Producer::make, in);
        Node<float[]> ipc = r.bind(Reader::download, s.bind(Scaler::apply, x));
        Node<byte[]> staged = h.bind(Reader::hostBytes, Graph.hostCopy(s.bind(Scaler::again, x)));
        try (CompiledGraph<Integer, List<Object>> g = kiln.compile(in, Graph.outputs(List.of(ipc, staged)), OPTIONS)) {
            ExecutionPlan plan = g.plan();
            assertEquals(Transport.CUDA_IPC, transport(plan, 1), plan::toString);
            assertTrue(plan.channels().stream().anyMatch(c -> c.transport() == Transport.STAGED), plan::toString);
            assertEquals(2, plan.channels().stream().filter(c -> c.transport() == Transport.CUDA_IPC).count(),
                    plan::toString);
            pipelined(g, 10_000, 8, (e, out) -> {
                float[] want = affine(made(e), 2, 1);
                assertArrayEquals(want, (float[]) out.get(0), "CUDA IPC, execution " + e);
                assertArrayEquals(GpuActors.bytes(want), (byte[]) out.get(1), "staged, execution " + e);
            });
        }
        InputNode<Integer> in2 = Graph.input();
        Node<DeviceTensor> asked = p.bind(Producer::make, in2).withTransport(Transport.NCCL);
        try (CompiledGraph<Integer, float[]> g = kiln.compile(in2, r.bind(Reader::download,
                s.bind(Scaler::apply, asked)), OPTIONS)) {
            assertEquals(Transport.NCCL, transport(g.plan(), 1), g.plan()::toString);
            pipelined(g, 500, 8, (e, out) -> assertArrayEquals(affine(made(e), 2, 1), out,
                    "NCCL between child JVMs, execution " + e));
        }
        ActorRef<Reader> hostOnly = kiln.actor(Reader::new, ActorOptions.process("gc").gpu(0));
        InputNode<Integer> in3 = Graph.input();
        try (CompiledGraph<Integer, Integer> g = kiln.compile(in3, hostOnly.bind(Reader::echo, in3), OPTIONS)) {
            assertFalse(g.plan().devices().isEmpty(), "the plan holds the actor's GPU");
            for (int i = 0; i < 50; i++) {
                assertEquals(i, g.execute(i).get(GET));
            }
        }
    }

    /**
     * Two NCCL ranks: a producer in child JVM {@code victim} on GPU 0, a reader in this JVM on GPU 1, and a bystander
     * actor in the victim's JVM; the graph has run 100 executions, and 8 more are in flight when the victim's JVM has
     * just been killed with SIGKILL.
     */
    private record KilledRank(Kiln kiln, ActorRef<Producer> victim, ActorRef<Reader> survivor, ActorRef<Reader> pidOf,
                              CompiledGraph<Integer, float[]> graph, List<GraphFuture<float[]>> pending) {
    }

    private KilledRank killARank(CompileOptions options) throws Exception {
        Kiln kiln = Kiln.local(KilnOptions.defaults().simulatedGpus(2, 128L << 20).runDirectory(tmp.resolve("run"))
                .shmDirectory(tmp).workerTimeout(Duration.ofSeconds(3)));
        closing.add(kiln);
        ActorRef<Producer> victim = kiln.actor(Producer::new, ActorOptions.process("victim").gpu(0));
        ActorRef<Reader> survivor = kiln.actor(Reader::new, ActorOptions.defaults().gpu(1));
        ActorRef<Reader> pidOf = kiln.actor(Reader::new, ActorOptions.process("victim"));
        long pid = kiln.call(pidOf, Reader::pid).get(30, TimeUnit.SECONDS);
        InputNode<Integer> in = Graph.input();
        Node<DeviceTensor> x = victim.bind(Producer::make, in).withTransport(Transport.NCCL);
        CompiledGraph<Integer, float[]> g = kiln.compile(in, survivor.bind(Reader::download, x), options);
        closing.add(g);
        pipelined(g, 100, 8, (e, out) -> assertArrayEquals(made(e), out, "execution " + e));
        List<GraphFuture<float[]>> pending = new ArrayList<>();
        for (int i = 0; i < 8; i++) {
            pending.add(g.execute(100 + i));
        }
        ProcessHandle.of(pid).orElseThrow().destroyForcibly();
        return new KilledRank(kiln, victim, survivor, pidOf, g, pending);
    }

    /**
     * A rank killed mid-run fails the graph's executions with {@link ActorDiedException}; the surviving rank's
     * communicator is aborted, so its actor is free and answers at once.
     */
    @Test
    void aKilledRankFailsTheGraphAndTheSurvivorStaysUsable() throws Exception {
        KilledRank r = killARank(OPTIONS);
        Kiln kiln = r.kiln();
        CompiledGraph<Integer, float[]> g = r.graph();
        for (GraphFuture<float[]> f : r.pending()) {
            try {
                f.get(GET);
            } catch (ActorDiedException e) {
                assertTrue(e.getMessage().contains("victim"), e.getMessage());
            }
        }
        KilnTestSupport.awaitTrue("the graph closes after its rank died", KilnTestSupport.SOON, g::isClosed);
        assertThrows(ActorDiedException.class, () -> g.execute(1));
        KilnTestSupport.awaitTrue("the survivor is free again", KilnTestSupport.SOON, () -> {
            try {
                return kiln.call(r.survivor(), Reader::echo, 5).get(1, TimeUnit.SECONDS) == 5;
            } catch (IllegalStateException | ExecutionException | java.util.concurrent.TimeoutException e) {
                return false;
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                return false;
            }
        });
        ExecutionException dead = assertThrows(ExecutionException.class,
                () -> kiln.call(r.victim(), Producer::make, 1).get(30, TimeUnit.SECONDS));
        assertInstanceOf(ActorDiedException.class, dead.getCause());
    }

    /**
     * With {@link ActorDeathPolicy#RESTART}, a rank killed mid-run is recreated on its GPU in a new child JVM, the NCCL
     * communicator is made again, and the graph runs on: every execution exact or lost to the restart.
     */
    @Test
    void withRestartAKilledRankIsRecreatedOnItsGpuAndTheNcclGraphRunsOn() throws Exception {
        KilledRank r = killARank(OPTIONS.onActorDeath(ActorDeathPolicy.RESTART));
        Kiln kiln = r.kiln();
        List<GraphFuture<float[]>> pending = r.pending();
        ActorRef<Reader> pidOf = r.pidOf();
        try (CompiledGraph<Integer, float[]> g = r.graph()) {
            for (int i = 0; i < pending.size(); i++) {
                try {
                    assertArrayEquals(made(100 + i), pending.get(i).get(GET), "execution " + (100 + i));
                } catch (GraphRestartedException e) {
                    assertTrue(e.getMessage().contains("victim"), e.getMessage());
                }
            }
            KilnTestSupport.awaitTrue("the graph restarts", KilnTestSupport.SOON, () -> g.restarts() == 1);
            assertEquals(Transport.NCCL, transport(g.plan(), 1), g.plan()::toString);
            for (int e = 0; e < 200; e++) {
                assertArrayEquals(made(e), g.execute(e).get(GET), "after the restart, execution " + e);
            }
            assertFalse(g.isClosed());
        }
        ExecutionException bystander = assertThrows(ExecutionException.class,
                () -> kiln.call(pidOf, Reader::pid).get(30, TimeUnit.SECONDS));
        assertInstanceOf(ActorDiedException.class, bystander.getCause(),
                "an actor of the dead JVM that no restarting graph holds stays dead");
    }

    /** Joined workers on two hosts, each simulating its own GPU: NCCL between the hosts, exact results. */
    @Test
    void betweenJoinedWorkersOnTwoHostsNcclGivesExactResults() throws Exception {
        byte[] secret = "a join secret of more than thirty-two bytes".getBytes(java.nio.charset.StandardCharsets.UTF_8);
        Kiln kiln = Kiln.local(KilnOptions.defaults().hostName("host-a").joinSecret(secret).listen("127.0.0.1:0")
                .runDirectory(tmp.resolve("run-a")).shmDirectory(Files.createDirectories(tmp.resolve("shm-a")))
                .workerTimeout(Duration.ofSeconds(5)));
        closing.add(kiln);
        for (String host : List.of("host-b", "host-c")) {
            KilnWorker w = KilnWorker.join(KilnWorker.Options.of(kiln.joinEndpoint().orElseThrow(), secret)
                    .name("w-" + host).hostName(host).runDirectory(tmp.resolve("run-" + host))
                    .shmDirectory(Files.createDirectories(tmp.resolve("shm-" + host))).timeout(Duration.ofSeconds(5))
                    .simulatedGpus(SimulatedGpus.of(1, 256L << 20)));
            closing.add(w);
        }
        kiln.awaitWorkers(2, Duration.ofSeconds(60));
        ActorRef<Producer> p = kiln.actor(Producer::new, ActorOptions.host("host-b").gpu(0));
        ActorRef<Scaler> s = kiln.actor(Scaler::new, ActorOptions.host("host-c").gpu(0));
        ActorRef<Reader> r = kiln.actor(Reader::new, ActorOptions.host("host-c").gpu(0));
        InputNode<Integer> in = Graph.input();
        try (CompiledGraph<Integer, byte[]> g = kiln.compile(in, r.bind(Reader::downloadBytes, s.bind(Scaler::apply,
                p.bind(Producer::make, in))), OPTIONS)) {
            ExecutionPlan plan = g.plan();
            assertEquals(Transport.NCCL, transport(plan, 1), plan::toString);
            assertEquals(Transport.GPU_SAME_DEVICE, transport(plan, 2), plan::toString);
            pipelined(g, 1_000, 8, (e, out) -> assertArrayEquals(GpuActors.bytes(affine(made(e), 2, 1)), out,
                    "execution " + e));
        }
        assertNotEquals(kiln.hosts().get(1).resources().gpus().getFirst().uuid(),
                kiln.hosts().get(2).resources().gpus().getFirst().uuid(), "two hosts, two machines");
    }

    /**
     * Two worker processes joined from one host (one host name and shared-memory directory, so one simulated machine)
     * and a driver on another: CUDA IPC between the workers' JVMs, staging to a CPU actor there, NCCL to the driver's
     * host over a UDP side channel; exact results.
     */
    @Test
    void betweenWorkerProcessesOfOneHostAndTheDriversHostEveryTransportIsExact() throws Exception {
        byte[] secret = "a join secret of more than thirty-two bytes".getBytes(java.nio.charset.StandardCharsets.UTF_8);
        Path secretFile = Files.write(tmp.resolve("secret"), secret);
        Kiln kiln = Kiln.local(KilnOptions.defaults().hostName("host-a").joinSecret(secret).listen("127.0.0.1:0")
                .runDirectory(tmp.resolve("run-a")).shmDirectory(Files.createDirectories(tmp.resolve("shm-a")))
                .workerTimeout(Duration.ofSeconds(5)).simulatedGpus(1, 256L << 20));
        closing.add(kiln);
        Path shmB = Files.createDirectories(tmp.resolve("shm-b"));
        List<Process> workers = new ArrayList<>();
        closing.addFirst(() -> { // runs last: the workers leave when the driver closes
            for (Process w : workers) {
                if (!w.waitFor(20, TimeUnit.SECONDS)) {
                    w.destroyForcibly();
                }
            }
        });
        for (String name : List.of("b1", "b2")) {
            List<String> command = new ArrayList<>();
            command.add(Path.of(System.getProperty("java.home"), "bin", "java").toString());
            for (String arg : java.lang.management.ManagementFactory.getRuntimeMXBean().getInputArguments()) {
                if (!arg.startsWith("-agentlib:jdwp") && !arg.startsWith("-Xrunjdwp") && !arg.startsWith("-javaagent")) {
                    command.add(arg);
                }
            }
            command.addAll(List.of("-Xmx256m", "-cp", System.getProperty("java.class.path"), KilnWorker.class.getName(),
                    "--driver", kiln.joinEndpoint().orElseThrow(), "--secret-file", secretFile.toString(), "--name",
                    name, "--host-name", "host-b", "--listen", "127.0.0.1:0", "--run-dir",
                    tmp.resolve("run-" + name).toString(), "--shm-dir", shmB.toString(), "--timeout", "5",
                    "--simulated-gpus", "2,256m"));
            workers.add(new ProcessBuilder(command).redirectErrorStream(true)
                    .redirectOutput(tmp.resolve(name + ".log").toFile()).start());
        }
        kiln.awaitWorkers(2, Duration.ofSeconds(90));
        ActorRef<Producer> p = kiln.actor(Producer::new, ActorOptions.host("host-b").gpu(0).name("p"));
        ActorRef<Scaler> s = kiln.actor(Scaler::new, ActorOptions.host("host-b").gpu(1).name("s"));
        ActorRef<Reader> h = kiln.actor(Reader::new, ActorOptions.host("host-b").name("h"));
        ActorRef<Reader> r = kiln.actor(Reader::new, ActorOptions.defaults().gpu(0).name("r"));
        long pPid = kiln.call(h, Reader::pid).get(30, TimeUnit.SECONDS);
        InputNode<Integer> in = Graph.input();
        Node<DeviceTensor> x = p.bind(Producer::make, in);
        Node<byte[]> staged = h.bind(Reader::hostBytes, Graph.hostCopy(s.bind(Scaler::again, x)));
        Node<float[]> nccl = r.bind(Reader::download, s.bind(Scaler::apply, x));
        try (CompiledGraph<Integer, List<Object>> g = kiln.compile(in, Graph.outputs(List.of(nccl, staged)), OPTIONS)) {
            ExecutionPlan plan = g.plan();
            assertTrue(plan.schedules().stream().map(sc -> sc.placement().process()).distinct().count() >= 3,
                    "the actors are spread over the two workers and the driver: " + plan);
            assertEquals(Transport.CUDA_IPC, transport(plan, 1), plan::toString);
            assertTrue(plan.channels().stream().anyMatch(c -> c.transport() == Transport.NCCL), plan::toString);
            assertTrue(plan.channels().stream().anyMatch(c -> c.transport() == Transport.STAGED), plan::toString);
            pipelined(g, 10_000, 8, (e, out) -> {
                float[] want = affine(made(e), 2, 1);
                assertArrayEquals(want, (float[]) out.get(0), "NCCL to the driver's host, execution " + e);
                assertArrayEquals(GpuActors.bytes(want), (byte[]) out.get(1), "staged, execution " + e);
            });
        }
        assertTrue(pPid > 0);
    }

    /** Closing the runtime removes its simulated machine: nothing is left in the shared-memory directory. */
    @Test
    void closingRemovesTheSimulatedMachine() throws Exception {
        Kiln kiln = kiln(1, 16L << 20);
        ActorRef<Producer> p = kiln.actor(Producer::new, ActorOptions.defaults().gpu(0));
        ActorRef<Reader> r = kiln.actor(Reader::new, ActorOptions.defaults().gpu(0));
        InputNode<Integer> in = Graph.input();
        try (CompiledGraph<Integer, float[]> g = kiln.compile(in, r.bind(Reader::download, p.bind(Producer::make, in)),
                OPTIONS)) {
            assertArrayEquals(made(3), g.execute(3).get(GET));
        }
        Path machine = Gpus.machineDirectory(tmp, "localhost");
        assertTrue(Files.isDirectory(machine), machine + " exists while the runtime runs");
        kiln.close();
        assertFalse(Files.exists(machine), machine + " is removed when the runtime closes");
    }
}
