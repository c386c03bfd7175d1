package dev.kiln;

import dev.kiln.compiler.ActorDeathPolicy;
import dev.kiln.compiler.CompileOptions;
import dev.kiln.compiler.IdleMode;
import dev.kiln.executor.WorkerNode;
import dev.kiln.graph.ActorRef;
import dev.kiln.graph.Graph;
import dev.kiln.graph.InputNode;
import dev.kiln.graph.Node;
import dev.kiln.tensor.Tensor;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.lang.management.ManagementFactory;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.SecureRandom;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import java.util.logging.Level;
import java.util.logging.LogRecord;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertDoesNotThrow;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Many hosts, simulated on one machine: each "host" is a {@link KilnWorker} JVM with its own host
 * name, its own Aeron media driver directory and its own shared-memory directory, talking to the
 * driver over Aeron UDP on loopback only. Chains and fan-outs across hosts with exact results,
 * joins refused for a wrong secret or a taken name, a worker killed with SIGKILL (failing its graph, or with
 * restart moving its actor to a worker that joins after it), a soak with workers killed and restarts, a worker
 * frozen with SIGSTOP past the worker timeout, and placement errors.
 */
@Timeout(value = 240, unit = TimeUnit.SECONDS)
class MultiHostTest {

    private static final Duration WORKER_TIMEOUT = Duration.ofSeconds(3);
    private static final Duration JOIN_WAIT = Duration.ofSeconds(90);
    private static final CompileOptions OPTIONS = CompileOptions.defaults().idle(IdleMode.BACKOFF)
            .getTimeout(Duration.ofSeconds(60)).submitTimeout(Duration.ofSeconds(60));

    @TempDir
    Path tmp;

    private byte[] secret;
    private Path secretFile;
    private Kiln kiln;
    private final List<Process> processes = new ArrayList<>();
    private LogCapture capture;
    private List<LogRecord> warnings;

    @BeforeEach
    void setUp() throws IOException {
        secret = new byte[32];
        new SecureRandom().nextBytes(secret);
        for (int i = 0; i < secret.length; i++) {
            secret[i] = (byte) ('a' + (secret[i] & 15)); // printable, as a secret file would hold
        }
        secretFile = Files.write(tmp.resolve("secret"), secret);
        capture = LogCapture.from(Level.WARNING);
        warnings = capture.records();
        kiln = Kiln.local(KilnOptions.defaults().hostName("host-a").joinSecret(secret).listen("127.0.0.1:0")
                .workerTimeout(WORKER_TIMEOUT).runDirectory(tmp.resolve("run-a")).register(Sum.class));
    }

    @AfterEach
    void tearDown() throws Exception {
        try {
            kiln.close();
            for (Process p : processes) {
                if (!p.waitFor(20, TimeUnit.SECONDS)) {
                    p.destroyForcibly().waitFor(10, TimeUnit.SECONDS);
                    throw new AssertionError("worker pid " + p.pid() + " did not leave when the driver closed");
                }
            }
        } finally {
            for (Process p : processes) {
                p.destroyForcibly();
            }
            capture.close();
        }
    }

    /** A stage of a chain. */
    public static final class Stage {
        private final int add;

        public Stage(int add) {
            this.add = add;
        }

        public int add(int x) {
            return x + add;
        }

        public Tensor scale(Tensor t) {
            float[] v = t.toFloatArray();
            for (int i = 0; i < v.length; i++) {
                v[i] = v[i] * 2 + add;
            }
            return Tensor.of(v, t.shape());
        }

        public Sum sum(Tensor t) {
            double s = 0;
            for (long i = 0; i < t.numel(); i++) {
                s += t.getFloat(i);
            }
            return new Sum(t.numel(), s);
        }

        public String host() {
            return System.getProperty("kiln.test.host", "driver") + "/" + ProcessHandle.current().pid();
        }

        public int plus(int x, int y) {
            return x + y;
        }

        public int slowAdd(int x) throws InterruptedException {
            Thread.sleep(100);
            return x + add;
        }
    }

    /** A registered value class that crosses hosts. */
    public record Sum(long count, double total) {
    }

    /** Starts a worker JVM that joins the driver as {@code name} on {@code host}. */
    private Process startWorker(String name, String host, Path secretPath, String... labels) throws IOException {
        return startWorker(name, host, shm(name), secretPath, labels);
    }

    private Process startWorker(String name, String host, Path shmDir, Path secretPath, String... labels)
            throws IOException {
        return startWorker(name, host, shmDir, secretPath, List.of(), labels);
    }

    private Process startWorker(String name, String host, Path shmDir, Path secretPath, List<String> jvmOptions,
                                String... labels) throws IOException {
        List<String> command = new ArrayList<>();
        command.add(Path.of(System.getProperty("java.home"), "bin", "java").toString());
        for (String arg : ManagementFactory.getRuntimeMXBean().getInputArguments()) {
            if (!arg.startsWith("-agentlib:jdwp") && !arg.startsWith("-Xrunjdwp") && !arg.startsWith("-javaagent")) {
                command.add(arg);
            }
        }
        command.addAll(jvmOptions);
        command.addAll(List.of("-Dkiln.test.host=" + host, "-Xmx256m", "-cp", System.getProperty("java.class.path"),
                KilnWorker.class.getName(), "--driver", kiln.joinEndpoint().orElseThrow(), "--secret-file",
                secretPath.toString(), "--name", name, "--host-name", host, "--listen", "127.0.0.1:0",
                "--run-dir", tmp.resolve("run-" + name).toString(), "--shm-dir", shmDir.toString(),
                "--timeout", Long.toString(WORKER_TIMEOUT.toSeconds())));
        for (String label : labels) {
            command.addAll(List.of("--label", label));
        }
        Process p = new ProcessBuilder(command).redirectErrorStream(true)
                .redirectOutput(tmp.resolve(name + ".log").toFile()).start();
        processes.add(p);
        return p;
    }

    private Path shm(String name) throws IOException {
        return Files.createDirectories(tmp.resolve("shm-" + name));
    }

    private String log(String name) {
        try {
            return Files.readString(tmp.resolve(name + ".log"));
        } catch (IOException e) {
            return "(no log: " + e + ")";
        }
    }

    @Test
    void aChainAcrossThreeHostsGivesExactResults() throws Exception {
        startWorker("w-b", "host-b", secretFile, "zone=east");
        startWorker("w-c", "host-c", secretFile, "zone=west", "role=sink");
        List<ActorHost> joined = kiln.awaitWorkers(2, JOIN_WAIT);
        assertEquals(List.of("w-b", "w-c"), joined.stream().map(ActorHost::name).toList());
        assertEquals(Map.of("zone", "west", "role", "sink"), joined.get(1).resources().labels());
        assertEquals("host-c", joined.get(1).resources().hostName());
        assertTrue(joined.get(0).resources().cores() >= 1);

        ActorRef<Stage> b = kiln.actor(() -> new Stage(1), ActorOptions.host("host-b"));
        ActorRef<Stage> c = kiln.actor(() -> new Stage(10), ActorOptions.label("role", "sink"));
        ActorRef<Stage> d = kiln.actor(() -> new Stage(100));
        assertTrue(kiln.call(b, Stage::host).get(30, TimeUnit.SECONDS).startsWith("host-b/"));
        assertTrue(kiln.call(c, Stage::host).get(30, TimeUnit.SECONDS).startsWith("host-c/"));
        assertEquals(2, joined.get(0).actorCount() + joined.get(1).actorCount());

        // driver -> host-b -> host-c -> driver's own actor -> driver
        InputNode<Integer> in = Graph.input();
        try (CompiledGraph<Integer, Integer> g = kiln.compile(in, d.bind(Stage::add, c.bind(Stage::add, b.bind(Stage::add,
                in))), OPTIONS)) {
            assertTrue(g.plan().toString().contains("AERON_UDP"), g.plan().toString());
            List<GraphFuture<Integer>> futures = new ArrayList<>();
            for (int i = 0; i < 500; i++) {
                futures.add(g.execute(i));
            }
            for (int i = 0; i < 500; i++) {
                assertEquals(i + 111, futures.get(i).get(Duration.ofSeconds(60)));
            }
        }
        // tensors larger than one UDP frame, and a registered class back to the driver
        InputNode<Tensor> tin = Graph.input();
        try (CompiledGraph<Tensor, Sum> g = kiln.compile(tin, c.bind(Stage::sum, b.bind(Stage::scale, tin)), OPTIONS)) {
            for (int n : new int[] {1, 1000, 300_000}) {
                float[] v = new float[n];
                for (int i = 0; i < n; i++) {
                    v[i] = i % 1000;
                }
                Sum s = g.execute(Tensor.of(v, n)).get(Duration.ofSeconds(60));
                double expected = 0;
                for (float x : v) {
                    expected += x * 2 + 1;
                }
                assertEquals(new Sum(n, expected), s);
            }
        }
        InputNode<Tensor> in1 = Graph.input();
        // a tensor back to the driver, element by element
        try (CompiledGraph<Tensor, Tensor> g = kiln.compile(in1, c.bind(Stage::scale, in1), OPTIONS)) {
            float[] v = {1, 2, 3, 4.5f};
            try (Tensor out = g.execute(Tensor.of(v, 2, 2)).get(Duration.ofSeconds(60))) {
                assertArrayEquals(new float[] {12, 14, 16, 19}, out.toFloatArray());
                assertArrayEquals(new long[] {2, 2}, out.shape());
            }
        }
    }

    @Test
    void aFanOutAndFanInAcrossHostsAndTheDriversChildJvm() throws Exception {
        startWorker("w-b", "host-b", secretFile);
        startWorker("w-c", "host-c", secretFile);
        kiln.awaitWorkers(2, JOIN_WAIT);
        ActorRef<Stage> b = kiln.actor(() -> new Stage(1), ActorOptions.host("host-b"));
        ActorRef<Stage> c = kiln.actor(() -> new Stage(2), ActorOptions.host("host-c"));
        ActorRef<Stage> child = kiln.actor(() -> new Stage(3), ActorOptions.process("child"));
        ActorRef<Stage> join = kiln.actor(() -> new Stage(0), ActorOptions.host("host-c"));
        InputNode<Integer> in = Graph.input();
        Node<Integer> x = b.bind(Stage::add, in);              // host-b, read by host-c and the child JVM
        Node<Integer> y = c.bind(Stage::add, x);
        Node<Integer> z = child.bind(Stage::add, x);           // the driver's host, another JVM
        try (CompiledGraph<Integer, List<Object>> g = kiln.compile(in, Graph.outputs(List.of(join.bind(Stage::plus, y, z), x)),
                OPTIONS)) {
            for (int i = 0; i < 200; i++) {
                List<Object> r = g.execute(i).get(Duration.ofSeconds(60));
                assertEquals((i + 1 + 2) + (i + 1 + 3), r.get(0));
                assertEquals(i + 1, r.get(1));
            }
        }
    }

    @Test
    void aWorkerOnTheDriversHostAndShmDirectoryGetsSharedMemoryAndADirectoryMismatchIsRefused() throws Exception {
        startWorker("near", "host-a", kiln.options().shmDirectory(), secretFile, "dir=shared");
        startWorker("odd", "host-a", secretFile, "dir=own"); // the driver's host name, its own directory
        kiln.awaitWorkers(2, JOIN_WAIT);
        ActorRef<Stage> near = kiln.actor(() -> new Stage(1), ActorOptions.host("host-a").withLabel("dir", "shared"));
        ActorRef<Stage> odd = kiln.actor(() -> new Stage(2), ActorOptions.host("host-a").withLabel("dir", "own"));
        ActorRef<Stage> local = kiln.actor(() -> new Stage(100));
        InputNode<Integer> in2 = Graph.input();
        try (CompiledGraph<Integer, Integer> g = kiln.compile(in2, local.bind(Stage::add, near.bind(Stage::add,
                in2)), OPTIONS)) {
            assertTrue(g.plan().toString().contains("SHARED_MEMORY") && !g.plan().toString().contains("AERON_UDP"),
                    g.plan().toString());
            for (int i = 0; i < 100; i++) {
                assertEquals(i + 101, g.execute(i).get(Duration.ofSeconds(60)));
            }
        }
        InputNode<Integer> in3 = Graph.input();
        dev.kiln.compiler.GraphCompileException e = assertThrows(dev.kiln.compiler.GraphCompileException.class,
                () -> kiln.compile(in3, local.bind(Stage::add, odd.bind(Stage::add, in3)), OPTIONS));
        assertTrue(e.getMessage().contains("different shared-memory directories")
                && e.getMessage().contains(kiln.options().shmDirectory().toString())
                && e.getMessage().contains("--host-name"), e.getMessage());
        // the failed compile held nothing: kiln.call works only on actors no graph holds
        assertEquals(3, kiln.call(odd, Stage::add, 1).get(30, TimeUnit.SECONDS));
        assertEquals(101, kiln.call(local, Stage::add, 1).get(30, TimeUnit.SECONDS));
    }

    @Test
    void aWorkerWithTheWrongSecretIsRefusedAndLogged() throws Exception {
        Path wrong = Files.writeString(tmp.resolve("wrong"), "not-the-secret-at-all-0123456789");
        Process p = startWorker("intruder", "host-x", wrong);
        assertTrue(p.waitFor(60, TimeUnit.SECONDS), "the refused worker exits");
        assertEquals(KilnWorker.EXIT_REFUSED, p.exitValue(), log("intruder"));
        assertTrue(log("intruder").contains("the join secret does not match"), log("intruder"));
        assertTrue(kiln.hosts().stream().noneMatch(h -> h.name().equals("intruder")), kiln.hosts().toString());
        assertTrue(warnings.stream().anyMatch(r -> r.getMessage().contains("refused worker intruder")
                && r.getMessage().contains("does not know the join secret")), warnings.toString());
        ActorCreationException e = assertThrows(ActorCreationException.class,
                () -> kiln.actor(() -> new Stage(0), ActorOptions.host("host-x")));
        assertTrue(e.getMessage().contains("no worker has joined"), e.getMessage());
    }

    @Test
    void aSecondWorkerWithATakenNameIsRefused() throws Exception {
        startWorker("same", "host-b", secretFile);
        kiln.awaitWorkers(1, JOIN_WAIT);
        Process second = startWorker("same", "host-c", secretFile);
        assertTrue(second.waitFor(60, TimeUnit.SECONDS), "the second worker exits");
        assertEquals(KilnWorker.EXIT_REFUSED, second.exitValue(), log("same"));
        assertEquals(1, kiln.awaitWorkers(1, JOIN_WAIT).size());
    }

    @Test
    void placementThatNoWorkerSatisfiesListsTheWorkers() throws Exception {
        startWorker("w-b", "host-b", secretFile, "zone=east");
        kiln.awaitWorkers(1, JOIN_WAIT);
        ActorCreationException host = assertThrows(ActorCreationException.class,
                () -> kiln.actor(() -> new Stage(0), ActorOptions.host("host-z")));
        assertTrue(host.getMessage().contains("host host-z") && host.getMessage().contains("w-b (host host-b, labels "
                + "{zone=east}"), host.getMessage());
        if (!dev.kiln.cuda.Cuda.isAvailable()) { // the workers run here, so they advertise this machine's GPUs
            ActorCreationException gpu = assertThrows(ActorCreationException.class,
                    () -> kiln.actor(() -> new Stage(0), ActorOptions.host("host-b").gpu(0)));
            assertTrue(gpu.getMessage().contains("with GPU 0") && gpu.getMessage().contains("0 GPUs"),
                    gpu.getMessage());
        }
        ActorCreationException label = assertThrows(ActorCreationException.class,
                () -> kiln.actor(() -> new Stage(0), ActorOptions.label("zone", "west")));
        assertTrue(label.getMessage().contains("labels {zone=west}") && label.getMessage().contains("w-b"),
                label.getMessage());
        // the name of an actor whose placement failed is free again
        kiln.actor(() -> new Stage(0), ActorOptions.label("zone", "east").name("n"));
        try (Kiln closedDoor = Kiln.local(KilnOptions.defaults().runDirectory(tmp.resolve("run-closed")))) {
            ActorCreationException none = assertThrows(ActorCreationException.class,
                    () -> closedDoor.actor(() -> new Stage(0), ActorOptions.host("host-b")));
            assertTrue(none.getMessage().contains("accepts no workers"), none.getMessage());
            assertTrue(closedDoor.joinEndpoint().isEmpty());
        }
    }

    @Test
    void aKilledWorkerFailsTheGraphsThatUseItAndNoOther() throws Exception {
        Process victim = startWorker("victim", "host-b", secretFile);
        startWorker("survivor", "host-c", secretFile);
        kiln.awaitWorkers(2, JOIN_WAIT);
        ActorRef<Stage> v = kiln.actor(() -> new Stage(1), ActorOptions.host("host-b"));
        ActorRef<Stage> s = kiln.actor(() -> new Stage(2), ActorOptions.host("host-c"));
        ActorRef<Stage> local = kiln.actor(() -> new Stage(3));
        InputNode<Integer> in0 = Graph.input();
        CompiledGraph<Integer, Integer> doomed = kiln.compile(in0, local.bind(Stage::add, v.bind(Stage::slowAdd, in0)),
                OPTIONS);
        InputNode<Integer> in4 = Graph.input();
        CompiledGraph<Integer, Integer> other = kiln.compile(in4, s.bind(Stage::add, in4), OPTIONS);
        assertEquals(5, doomed.execute(1).get(Duration.ofSeconds(60)));
        List<GraphFuture<Integer>> pending = new ArrayList<>();
        for (int i = 0; i < 5; i++) {
            pending.add(doomed.execute(i));
        }
        long killed = System.nanoTime();
        victim.destroyForcibly();
        for (GraphFuture<Integer> f : pending) {
            try {
                f.get(Duration.ofSeconds(30));
            } catch (ActorDiedException e) {
                assertTrue(e.getMessage().contains("victim"), e.getMessage());
            }
        }
        ActorDiedException later = assertThrows(ActorDiedException.class,
                () -> pending.getLast().get(Duration.ofSeconds(30)));
        assertTrue(later.getMessage().contains("victim"), later.getMessage());
        long millis = TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - killed);
        assertTrue(millis < WORKER_TIMEOUT.toMillis() + 10_000, "failed " + millis + " ms after the kill");
        assertTrue(doomed.isClosed());
        for (int i = 0; i < 50; i++) {
            assertEquals(i + 2, other.execute(i).get(Duration.ofSeconds(60)), "the other graph keeps running");
        }
        other.close();
        assertTrue(kiln.hosts().stream().noneMatch(h -> h.name().equals("victim")), kiln.hosts().toString());
    }

    @Test
    void withRestartAKilledWorkersActorMovesToTheWorkerThatRejoinsAndTheGraphRunsOn() throws Exception {
        Process victim = startWorker("w-b", "host-b", secretFile, "role=stage");
        kiln.awaitWorkers(1, JOIN_WAIT);
        ActorRef<Stage> b = kiln.actor(() -> new Stage(1), ActorOptions.label("role", "stage").name("stage-b"));
        ActorRef<Stage> d = kiln.actor(() -> new Stage(100));
        String before = kiln.call(b, Stage::host).get(30, TimeUnit.SECONDS);
        InputNode<Integer> in = Graph.input();
        CompileOptions restart = OPTIONS.maxInflight(8)
                .onActorDeath(ActorDeathPolicy.RESTART.placementTimeout(JOIN_WAIT));
        try (CompiledGraph<Integer, Integer> g = kiln.compile(in, d.bind(Stage::add, b.bind(Stage::add, in)), restart)) {
            assertTrue(g.plan().toString().contains("AERON_UDP"), g.plan().toString());
            for (int i = 0; i < 200; i++) {
                assertEquals(i + 101, g.execute(i).get(Duration.ofSeconds(60)));
            }
            List<GraphFuture<Integer>> inFlight = new ArrayList<>();
            for (int i = 0; i < 8; i++) {
                inFlight.add(g.execute(i));
            }
            victim.destroyForcibly();
            assertTrue(victim.waitFor(30, TimeUnit.SECONDS));
            // The same worker, restarted by whatever runs it, joins again once the driver let go of its name.
            KilnTestSupport.awaitTrue("the driver loses w-b", Duration.ofSeconds(60),
                    () -> kiln.hosts().stream().noneMatch(h -> h.name().equals("w-b")));
            startWorker("w-b", "host-b", secretFile, "role=stage");
            List<GraphFuture<Integer>> during = new ArrayList<>();
            for (int i = 0; i < 8; i++) {
                during.add(g.execute(1000 + i)); // waits for the restart, then runs on the new worker
            }
            for (int i = 0; i < inFlight.size(); i++) {
                try {
                    assertEquals(i + 101, inFlight.get(i).get(Duration.ofSeconds(60)));
                } catch (GraphRestartedException e) {
                    assertTrue(e.getMessage().contains("w-b") && e.getMessage().contains("restarts"), e.getMessage());
                }
            }
            for (int i = 0; i < during.size(); i++) {
                assertEquals(1000 + i + 101, during.get(i).get(Duration.ofSeconds(60)));
            }
            assertEquals(1, g.restarts());
            for (int i = 0; i < 200; i++) {
                assertEquals(i + 101, g.execute(i).get(Duration.ofSeconds(60)), "after the restart");
            }
        }
        String after = kiln.call(b, Stage::host).get(30, TimeUnit.SECONDS);
        assertTrue(after.startsWith("host-b/") && !after.equals(before), before + " then " + after);
    }

    @Test
    void withRestartALostWorkersActorMovesToAnotherMatchingWorkerAndThePlanFollows() throws Exception {
        Process victim = startWorker("w-b", "host-b", secretFile, "role=stage");
        kiln.awaitWorkers(1, JOIN_WAIT);
        ActorRef<Stage> b = kiln.actor(() -> new Stage(1), ActorOptions.label("role", "stage"));
        ActorRef<Stage> c = kiln.actor(() -> new Stage(10), ActorOptions.process("child"));
        InputNode<Integer> in = Graph.input();
        CompileOptions restart = OPTIONS.onActorDeath(ActorDeathPolicy.RESTART.placementTimeout(JOIN_WAIT));
        try (CompiledGraph<Integer, Integer> g = kiln.compile(in, c.bind(Stage::add, b.bind(Stage::add, in)), restart)) {
            assertEquals(12, g.execute(1).get(Duration.ofSeconds(60)));
            assertTrue(g.plan().toString().contains("w-b"), g.plan().toString());
            victim.destroyForcibly();
            startWorker("w-c", "host-c", secretFile, "role=stage"); // another host with the label
            assertEquals(22, executeUntilNotLost(g, 11), "waits for the restart on w-c");
            assertEquals(1, g.restarts());
            assertTrue(g.plan().toString().contains("w-c") && !g.plan().toString().contains("w-b"),
                    g.plan().toString());
        }
        assertTrue(kiln.call(b, Stage::host).get(30, TimeUnit.SECONDS).startsWith("host-c/"));
    }

    /**
     * The chaos soak: a chain through two child JVMs, a joined worker and the driver's JVM runs 200,000 executions
     * ({@code -Dkiln.soak.executions=N} changes the count) with {@link ActorDeathPolicy#RESTART} on, while each of
     * the three worker processes is, in a random order at random points, killed with SIGKILL twice, frozen with
     * SIGSTOP for a third of the worker timeout (then SIGCONT: it carries on) and frozen past the timeout (then
     * SIGCONT: it was declared lost and leaves, status 6 for the joined worker); the joined worker's media driver
     * drops 5 % of the UDP data frames it sends and of those it receives (Aeron's loss generator), both directions
     * of its data and control streams, and is started again after each loss, as its supervisor would. Every execution
     * gives its exact result or fails with {@link GraphRestartedException}, nothing hangs, the loss really happened
     * (the driver's media driver sent and received NAKs), and no process or shared-memory file is left.
     */
    @Test
    @Timeout(value = 600, unit = TimeUnit.SECONDS)
    void aChaosSoakGivesEveryExecutionExactlyOrLosesItToARestart() throws Exception {
        int executions = Integer.getInteger("kiln.soak.executions", 200_000);
        int window = 16;
        List<String> lossy = List.of(
                "-Daeron.ReceiveChannelEndpoint.supplier=io.aeron.driver.ext.DebugReceiveChannelEndpointSupplier",
                "-Daeron.debug.receive.data.loss.rate=0.05", "-Daeron.debug.receive.data.loss.seed=16",
                "-Daeron.SendChannelEndpoint.supplier=io.aeron.driver.ext.DebugSendChannelEndpointSupplier",
                "-Daeron.debug.send.data.loss.rate=0.05", "-Daeron.debug.send.data.loss.seed=17");
        Process worker = startWorker("soak-c", "host-c", shm("soak-c"), secretFile, lossy, "role=soak");
        kiln.awaitWorkers(1, JOIN_WAIT);
        ActorRef<Stage> a = kiln.actor(() -> new Stage(1), ActorOptions.process("soak-a"));
        ActorRef<Stage> b = kiln.actor(() -> new Stage(10), ActorOptions.process("soak-b"));
        ActorRef<Stage> c = kiln.actor(() -> new Stage(100), ActorOptions.label("role", "soak"));
        ActorRef<Stage> d = kiln.actor(() -> new Stage(1000));
        java.util.Random random = new java.util.Random(16);
        List<String> events = new ArrayList<>();
        for (String process : List.of("soak-a", "soak-b", "soak-c")) {
            for (String what : List.of("kill", "kill", "freeze", "freeze-past-timeout")) {
                events.add(what + " " + process);
            }
        }
        java.util.Collections.shuffle(events, random);
        List<Integer> eventAt = new ArrayList<>();
        for (int k = 0; k < events.size(); k++) {
            eventAt.add((k + 1) * executions / (events.size() + 1) + random.nextInt(executions / (4 * (events.size() + 1))));
        }
        int deaths = (int) events.stream().filter(e -> !e.startsWith("freeze ")).count();
        int freezes = events.size() - deaths;
        CompileOptions options = OPTIONS.maxInflight(window).onActorDeath(ActorDeathPolicy.RESTART
                .limit(deaths + freezes + 4, Duration.ofMinutes(10)).placementTimeout(JOIN_WAIT));
        java.util.Set<Long> pids = new java.util.HashSet<>(List.of(ProcessHandle.current().pid()));
        java.util.concurrent.ScheduledExecutorService resumer = java.util.concurrent.Executors
                .newSingleThreadScheduledExecutor();
        List<java.util.concurrent.ScheduledFuture<?>> resumes = new ArrayList<>();
        int lost = 0;
        long started = System.nanoTime();
        InputNode<Integer> in5 = Graph.input();
        try (CompiledGraph<Integer, Integer> g = kiln.compile(in5, d.bind(Stage::add, c.bind(Stage::add,
                b.bind(Stage::add, a.bind(Stage::add, in5)))), options)) {
            java.util.ArrayDeque<GraphFuture<Integer>> inFlight = new java.util.ArrayDeque<>();
            int checked = 0;
            for (int i = 0; i < executions; i++) {
                if (!eventAt.isEmpty() && i == eventAt.getFirst()) {
                    eventAt.removeFirst();
                    String[] event = events.removeFirst().split(" ");
                    String victim = event[1];
                    long pid = victim.equals("soak-c") ? worker.pid() : kiln.hosts().stream()
                            .filter(h -> h.name().equals(victim))
                            .mapToLong(h -> ((dev.kiln.executor.RemoteHost) h).pid()).findFirst().orElseThrow();
                    pids.add(pid);
                    switch (event[0]) {
                        case "kill" -> ProcessHandle.of(pid).orElseThrow().destroyForcibly();
                        case "freeze" -> {
                            KilnTestSupport.signal("STOP", pid); // executions stall behind it; it resumes well inside the timeout
                            resumes.add(resumer.schedule(() -> KilnTestSupport.signal("CONT", pid), WORKER_TIMEOUT.toMillis() / 3,
                                    TimeUnit.MILLISECONDS));
                        }
                        default -> { // frozen past the timeout: declared lost meanwhile, it leaves when resumed
                            KilnTestSupport.signal("STOP", pid);
                            Thread.sleep(2 * WORKER_TIMEOUT.toMillis());
                            KilnTestSupport.signal("CONT", pid);
                        }
                    }
                    if (!event[0].equals("freeze")) {
                        ProcessHandle.of(pid).ifPresent(h -> assertDoesNotThrow(
                                () -> h.onExit().get(30, TimeUnit.SECONDS), victim + " " + pid + " did not end"));
                    }
                    if (victim.equals("soak-c") && !event[0].equals("freeze")) {
                        assertTrue(worker.waitFor(30, TimeUnit.SECONDS));
                        if (event[0].equals("freeze-past-timeout")) {
                            assertEquals(KilnWorker.EXIT_DECLARED_LOST, worker.exitValue(), log("soak-c"));
                        }
                        // its supervisor starts it again; it joins once the driver let go of its name
                        KilnTestSupport.awaitTrue("the driver loses soak-c", JOIN_WAIT,
                                () -> kiln.hosts().stream().noneMatch(h -> h.name().equals("soak-c")));
                        worker = startWorker("soak-c", "host-c", shm("soak-c"), secretFile, lossy, "role=soak");
                    }
                }
                if (inFlight.size() == window) {
                    lost += exactOrLost(inFlight.removeFirst(), checked++);
                }
                inFlight.add(g.execute(i));
            }
            while (!inFlight.isEmpty()) {
                lost += exactOrLost(inFlight.removeFirst(), checked++);
            }
            for (java.util.concurrent.ScheduledFuture<?> r : resumes) {
                r.get(30, TimeUnit.SECONDS);
            }
            KilnTestSupport.awaitTrue("every death restarted the graph", JOIN_WAIT, () -> g.restarts() >= deaths);
            // A freeze within the timeout restarts nothing, unless this shared machine stalled the heartbeats too.
            assertTrue(g.restarts() <= deaths + freezes, g.restarts() + " restarts");
            System.out.println("MultiHostTest chaos soak: " + executions + " executions in "
                    + TimeUnit.NANOSECONDS.toSeconds(System.nanoTime() - started) + " s with " + deaths
                    + " deaths (SIGKILL, SIGSTOP past the timeout) and " + freezes + " short freezes, "
                    + g.restarts() + " restarts, " + lost + " lost to restarts, NAKs sent/received by the driver's "
                    + "media driver " + java.util.Arrays.toString(naks()));
            assertTrue(lost <= g.restarts() * window, lost + " lost: at most the executions in flight at each death");
        } finally {
            resumer.shutdownNow();
        }
        long[] naks = naks();
        assertTrue(naks[0] > 0 && naks[1] > 0, "5 % loss both ways: the driver's media driver sent NAKs for frames "
                + "lost toward it and received NAKs for frames lost toward the worker: " + java.util.Arrays.toString(naks));
        List<ProcessHandle> children = ProcessHandle.current().children().toList();
        children.forEach(h -> pids.add(h.pid()));
        kiln.close();
        for (ProcessHandle h : children) {
            assertTrue(h.onExit().get(30, TimeUnit.SECONDS) != null);
        }
        try (var files = Files.list(kiln.options().shmDirectory())) {
            List<Path> left = files.filter(f -> pids.stream().anyMatch(pid ->
                    f.getFileName().toString().startsWith("kiln-" + pid + "-"))).toList();
            assertEquals(List.of(), left, "no shared-memory file of the driver or its child JVMs is left");
        }
    }

    /** @return the NAKs the driver's media driver sent and received so far (Aeron's system counters) */
    private long[] naks() throws IOException {
        Path aeronDirectory;
        try (var dirs = Files.list(kiln.options().runDirectory())) {
            aeronDirectory = dirs.filter(p -> p.getFileName().toString().startsWith(
                    "aeron-" + ProcessHandle.current().pid() + "-")).findFirst().orElseThrow();
        }
        long[] naks = new long[2];
        try (io.aeron.Aeron client = io.aeron.Aeron.connect(new io.aeron.Aeron.Context()
                .aeronDirectoryName(aeronDirectory.toString()))) {
            client.countersReader().forEach((counterId, typeId, key, label) -> {
                if (typeId == io.aeron.AeronCounters.DRIVER_SYSTEM_COUNTER_TYPE_ID) {
                    if (label.equals(io.aeron.driver.status.SystemCounterDescriptor.NAK_MESSAGES_SENT.label())) {
                        naks[0] = client.countersReader().getCounterValue(counterId);
                    } else if (label.equals(
                            io.aeron.driver.status.SystemCounterDescriptor.NAK_MESSAGES_RECEIVED.label())) {
                        naks[1] = client.countersReader().getCounterValue(counterId);
                    }
                }
            });
        }
        return naks;
    }

    /** @return 1 if the execution was lost to a restart, 0 if it gave its exact result through the soak's chain */
    private static int exactOrLost(GraphFuture<Integer> f, int input) {
        try {
            assertEquals(input + 1111, f.get(Duration.ofSeconds(120)), "execution " + input);
            return 0;
        } catch (GraphRestartedException e) {
            assertTrue(e.getMessage().contains("restarts (restart "), e.getMessage());
            return 1;
        }
    }

    /** Executes once more while an execution is lost in flight (until the graph noticed the death and restarted). */
    private static int executeUntilNotLost(CompiledGraph<Integer, Integer> g, int input) {
        for (int attempt = 1; ; attempt++) {
            try {
                return g.execute(input).get(Duration.ofSeconds(60));
            } catch (GraphRestartedException e) {
                assertTrue(attempt < 5, "lost " + attempt + " times: " + e.getMessage());
            }
        }
    }

    @Test
    void aFrozenWorkerIsLostAfterTheWorkerTimeoutAndLeavesWithItsStatusWhenResumed() throws Exception {
        Process frozen = startWorker("frozen", "host-b", secretFile);
        kiln.awaitWorkers(1, JOIN_WAIT);
        ActorRef<Stage> f = kiln.actor(() -> new Stage(1), ActorOptions.host("host-b"));
        InputNode<Integer> in6 = Graph.input();
        CompiledGraph<Integer, Integer> g = kiln.compile(in6, f.bind(Stage::add, in6), OPTIONS);
        assertEquals(2, g.execute(1).get(Duration.ofSeconds(60)));
        long stopped = System.nanoTime();
        KilnTestSupport.signal("STOP", frozen.pid());
        KilnTestSupport.awaitTrue("the worker is stopped", Duration.ofSeconds(10), () -> stopped(frozen.pid()));
        try {
            ActorDiedException e = assertThrows(ActorDiedException.class,
                    () -> g.execute(2).get(Duration.ofSeconds(60)));
            long millis = TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - stopped);
            assertTrue(e.getMessage().contains("frozen"), e.getMessage());
            assertTrue(millis >= WORKER_TIMEOUT.toMillis() - 500, "lost after " + millis + " ms");
            assertTrue(e.getMessage().contains("KilnOptions.workerTimeout") || e.getMessage().contains("lost"),
                    e.getMessage());
            // The graph may fail first through its channel's own peer timeout: resume only once the driver declared
            // the worker lost (one resumed before that carries on, as it should).
            KilnTestSupport.awaitTrue("the driver declares the frozen worker lost", Duration.ofSeconds(30),
                    () -> kiln.hosts().stream().noneMatch(h -> h.name().equals("frozen")));
        } finally {
            KilnTestSupport.signal("CONT", frozen.pid());
        }
        // Resumed after it was declared lost: it learns so, stops its actors and leaves with its own status.
        assertTrue(frozen.waitFor(60, TimeUnit.SECONDS), () -> "the resumed worker leaves: " + log("frozen"));
        assertEquals(KilnWorker.EXIT_DECLARED_LOST, frozen.exitValue(), log("frozen"));
        assertTrue(log("frozen").contains("declared this worker lost"), log("frozen"));
    }

    @Test
    void aWorkerFrozenForLessThanTheWorkerTimeoutCarriesOn() throws Exception {
        Process paused = startWorker("paused", "host-b", secretFile);
        kiln.awaitWorkers(1, JOIN_WAIT);
        ActorRef<Stage> p = kiln.actor(() -> new Stage(1), ActorOptions.host("host-b"));
        InputNode<Integer> in7 = Graph.input();
        try (CompiledGraph<Integer, Integer> g = kiln.compile(in7, p.bind(Stage::add, in7), OPTIONS)) {
            assertEquals(2, g.execute(1).get(Duration.ofSeconds(60)));
            KilnTestSupport.signal("STOP", paused.pid());
            KilnTestSupport.awaitTrue("the worker is stopped", Duration.ofSeconds(10), () -> stopped(paused.pid()));
            GraphFuture<Integer> during = g.execute(2);
            Thread.sleep(WORKER_TIMEOUT.toMillis() / 3);
            KilnTestSupport.signal("CONT", paused.pid());
            assertEquals(3, during.get(Duration.ofSeconds(60)), "the execution sent while it was frozen");
            for (int i = 0; i < 20; i++) {
                assertEquals(i + 1, g.execute(i).get(Duration.ofSeconds(60)));
            }
        }
        assertTrue(paused.isAlive());
        assertEquals(1, kiln.awaitWorkers(1, JOIN_WAIT).size());
    }

    /** Whether every thread of the process is stopped (state T in /proc/PID/task/TID/stat). */
    private static boolean stopped(long pid) {
        try (var tasks = Files.list(Path.of("/proc", Long.toString(pid), "task"))) {
            return tasks.allMatch(t -> {
                try {
                    String stat = Files.readString(t.resolve("stat"));
                    return stat.charAt(stat.lastIndexOf(')') + 2) == 'T';
                } catch (IOException e) {
                    return true; // the thread is gone
                }
            });
        } catch (IOException e) {
            return false;
        }
    }

    @Test
    void aWorkerEmbeddedInThisJvmJoinsServesAndLeaves() throws Exception {
        KilnWorker w = KilnWorker.join(KilnWorker.Options.of(kiln.joinEndpoint().orElseThrow(), secret)
                .name("embedded").hostName("host-e").label("kind", "embedded").runDirectory(tmp.resolve("run-e"))
                .shmDirectory(shm("embedded")).timeout(WORKER_TIMEOUT));
        try {
            assertEquals("embedded", kiln.awaitWorkers(1, JOIN_WAIT).getFirst().name());
            ActorRef<Stage> e = kiln.actor(() -> new Stage(5), ActorOptions.label("kind", "embedded"));
            InputNode<Integer> in8 = Graph.input();
            try (CompiledGraph<Integer, Integer> g = kiln.compile(in8, e.bind(Stage::add, in8), OPTIONS)) {
                for (int i = 0; i < 100; i++) {
                    assertEquals(i + 5, g.execute(i).get(Duration.ofSeconds(60)));
                }
            }
        } finally {
            w.close();
        }
        assertTrue(w.awaitTermination(Duration.ofSeconds(30)));
        assertFalse(w.lostDriver());
        KilnTestSupport.awaitTrue("the driver sees the worker leave", Duration.ofSeconds(30),
                () -> kiln.hosts().stream().noneMatch(h -> h.name().equals("embedded")));
        WorkerNode.JoinFailedException refused = assertThrows(WorkerNode.JoinFailedException.class,
                () -> KilnWorker.join(KilnWorker.Options.of(kiln.joinEndpoint().orElseThrow(), secret).name("driver")
                        .runDirectory(tmp.resolve("run-f")).timeout(Duration.ofSeconds(20))));
        assertTrue(refused.refused() && refused.getMessage().contains("taken"), refused.getMessage());
    }
}
