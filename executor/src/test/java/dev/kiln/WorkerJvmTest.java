package dev.kiln;

import dev.kiln.compiler.ActorDeathPolicy;
import dev.kiln.compiler.CompileOptions;
import dev.kiln.compiler.GraphCompileException;
import dev.kiln.compiler.IdleMode;
import dev.kiln.graph.ActorRef;
import dev.kiln.graph.Graph;
import dev.kiln.graph.InputNode;
import dev.kiln.graph.Node;
import dev.kiln.graph.Transport;
import dev.kiln.tensor.DType;
import dev.kiln.tensor.Tensor;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Actors in worker JVMs: graphs across JVMs through shared memory, dynamic calls, registered
 * and unregistered classes, a worker killed with SIGKILL (with and without restart), and nothing
 * left behind by close.
 */
@Timeout(value = 180, unit = TimeUnit.SECONDS)
class WorkerJvmTest {

    private static final Path SHM = Path.of("/dev/shm");
    private static final CompileOptions OPTIONS = CompileOptions.defaults().idle(IdleMode.BACKOFF)
            .getTimeout(Duration.ofSeconds(60)).submitTimeout(Duration.ofSeconds(60));

    private Kiln kiln;

    @BeforeEach
    void setUp() {
        kiln = Kiln.local(KilnOptions.defaults().register(Point.class));
    }

    @AfterEach
    void tearDown() throws Exception {
        List<ProcessHandle> workers = ProcessHandle.current().children().toList();
        kiln.close();
        for (ProcessHandle w : workers) {
            w.onExit().get(10, TimeUnit.SECONDS);
        }
        assertTrue(ProcessHandle.current().children().noneMatch(ProcessHandle::isAlive), "no worker JVM outlives close");
        assertEquals(List.of(), shmFilesOf(ProcessHandle.current().pid()), "the driver's shared-memory files");
        for (ProcessHandle w : workers) {
            assertEquals(List.of(), shmFilesOf(w.pid()), "the worker's shared-memory files");
        }
    }

    /** Adds one to every element; a new tensor each call, as a model layer would return. */
    public static final class Inc {
        private final float step;

        public Inc(float step) {
            this.step = step;
        }

        public Tensor add(Tensor t) {
            float[] v = t.toFloatArray();
            for (int i = 0; i < v.length; i++) {
                v[i] += step;
            }
            return Tensor.of(v, t.shape());
        }

        public long pid() {
            return ProcessHandle.current().pid();
        }

        public String fail(String why) {
            throw new IllegalStateException(why);
        }

        public int die(int x) {
            throw new OutOfMemoryError("simulated: actor cannot go on");
        }

        public int plus(int x) {
            return x + (int) step;
        }

        public int plusOrDie(int x) {
            if (x < 0) {
                throw new OutOfMemoryError("simulated: poisoned by " + x);
            }
            return x + (int) step;
        }

        public int sleepThenEcho(int x) throws InterruptedException {
            Thread.sleep(200);
            return x;
        }
    }

    /** Builds its result in the outgoing slot; remembers addresses to show nothing was copied. */
    public static final class Builder {
        volatile long builtAt;
        volatile long readAt;

        public Tensor ramp(Integer n) {
            Tensor t = Outputs.tensor(DType.F32, n);
            for (int i = 0; i < n; i++) {
                t.setFloat(i, i);
            }
            builtAt = t.data().address();
            return t;
        }

        public Float sum(Tensor t) {
            readAt = t.data().address();
            float s = 0;
            for (long i = 0; i < t.numel(); i++) {
                s += t.getFloat(i);
            }
            return s;
        }
    }

    /** A registered value class. */
    public record Point(int x, int y) {
    }

    /** Never registered. */
    public record Secret(String value) {
    }

    /** Works on points and strings. */
    public static final class Geo {
        public Point flip(Point p) {
            return new Point(p.y(), p.x());
        }

        public Secret hide(String s) {
            return new Secret(s);
        }

        public Object hideBehindObject(String s) {
            return new Secret(s);
        }

        public String upper(String s) {
            return s.toUpperCase(java.util.Locale.ROOT);
        }

        public String join(String a, String b) {
            return a + "|" + b;
        }
    }

    @Test
    void chainDriverToWorkerToWorkerToDriverCarriesTensorsExactly() throws Exception {
        ActorRef<Inc> a = kiln.actor(() -> new Inc(1f), ActorOptions.process("a"));
        ActorRef<Inc> b = kiln.actor(() -> new Inc(2f), ActorOptions.process("b"));
        InputNode<Tensor> in = Graph.input();
        Node<Tensor> out = b.bind(Inc::add, a.bind(Inc::add, in));
        // Two slots: 64 MiB values grow every channel from 1 MiB to 2 x 64 MiB slots.
        try (CompiledGraph<Tensor, Tensor> g = kiln.compile(in, out, OPTIONS.maxInflight(2))) {
            assertTrue(g.plan().toString().contains("SHARED_MEMORY"), g.plan().toString());
            for (long bytes : new long[] {4 << 10, 1 << 20, 64 << 20}) {
                int n = (int) (bytes / Float.BYTES);
                float[] x = new float[n];
                for (int i = 0; i < n; i++) {
                    x[i] = i % 1000;
                }
                try (Tensor t = Tensor.of(x, n)) {
                    Tensor y = g.execute(t).get();
                    assertEquals(DType.F32, y.dtype());
                    float[] got = y.toFloatArray();
                    assertEquals(n, got.length);
                    for (int i = 0; i < n; i++) {
                        if (got[i] != x[i] + 3f) {
                            throw new AssertionError("element " + i + " of a " + bytes + "-byte tensor: " + got[i]);
                        }
                    }
                    y.close();
                }
            }
        }
    }

    @Test
    void actorsRunInTheirWorkerJvms() throws Exception {
        ActorRef<Inc> a = kiln.actor(() -> new Inc(1f), ActorOptions.process("w1"));
        ActorRef<Inc> b = kiln.actor(() -> new Inc(1f), ActorOptions.process("w1"));
        ActorRef<Inc> c = kiln.actor(() -> new Inc(1f), ActorOptions.process());
        long pa = kiln.call(a, Inc::pid).get(60, TimeUnit.SECONDS);
        long pb = kiln.call(b, Inc::pid).get(60, TimeUnit.SECONDS);
        long pc = kiln.call(c, Inc::pid).get(60, TimeUnit.SECONDS);
        assertEquals(pa, pb, "actors of one named worker share its JVM");
        assertNotEquals(pa, pc);
        assertNotEquals(ProcessHandle.current().pid(), pa);
        assertEquals(2, ProcessHandle.current().children().filter(ProcessHandle::isAlive).count());
    }

    @Test
    void mixedInProcessAndWorkerActorsInOneGraph() throws Exception {
        ActorRef<Geo> local = kiln.actor(Geo::new);
        ActorRef<Geo> remote = kiln.actor(Geo::new, ActorOptions.process("geo"));
        ActorRef<Geo> sibling = kiln.actor(Geo::new, ActorOptions.process("geo"));
        InputNode<String> in = Graph.input();
        Node<String> up = remote.bind(Geo::upper, in);
        Node<String> same = sibling.bind(Geo::join, up, in);         // in process inside the worker
        Node<String> back = local.bind(Geo::join, same, up);         // worker -> driver
        try (CompiledGraph<String, String> g = kiln.compile(in, back, OPTIONS)) {
            String plan = g.plan().toString();
            assertTrue(plan.contains("IN_PROCESS") && plan.contains("SHARED_MEMORY"), plan);
            List<GraphFuture<String>> futures = new ArrayList<>();
            for (int i = 0; i < 200; i++) {
                futures.add(g.execute("x" + i));
            }
            for (int i = 0; i < 200; i++) {
                assertEquals("X" + i + "|x" + i + "|X" + i, futures.get(i).get());
            }
        }
    }

    @Test
    void registeredClassesCrossAndUnregisteredOnesAreRefusedWithHowToRegister() throws Exception {
        ActorRef<Geo> geo = kiln.actor(Geo::new, ActorOptions.process());
        InputNode<Point> in = Graph.input();
        try (CompiledGraph<Point, Point> g = kiln.compile(in, geo.bind(Geo::flip, in), OPTIONS)) {
            assertEquals(new Point(2, 1), g.execute(new Point(1, 2)).get());
        }
        // The declared types show it: compile refuses, naming the edge, the type and the call to make.
        InputNode<String> s = Graph.input();
        GraphCompileException refused = assertThrows(GraphCompileException.class,
                () -> kiln.compile(s, geo.bind(Geo::hide, s), OPTIONS));
        assertEquals("Geo.hide: the result of Geo.hide (declared " + Secret.class.getName() + ") goes to another JVM"
                + " through c1, but it cannot cross: " + Secret.class.getName() + " is not registered; register it for"
                + " every JVM of the runtime: Kiln.local(KilnOptions.defaults().register(WorkerJvmTest.Secret.class))",
                refused.getMessage());
        InputNode<Secret> secretIn = Graph.input();
        ActorRef<Geo> other = kiln.actor(Geo::new, ActorOptions.process());
        refused = assertThrows(GraphCompileException.class,
                () -> kiln.compile(secretIn, other.bind((Geo x, Secret v) -> v.value(), secretIn), OPTIONS));
        assertTrue(refused.getMessage().contains("argument 0 of WorkerJvmTest.lambda$") && refused.getMessage()
                .contains("comes from input in another JVM through c0, but it cannot cross: " + Secret.class.getName()
                        + " is not registered"), refused.getMessage());
        // Declared as Object: only the value tells, at the first execution, with the same advice. (A refused graph
        // leaves its calls bound to their actors and input: this one takes others.)
        ActorRef<Geo> third = kiln.actor(Geo::new, ActorOptions.process());
        InputNode<String> s2 = Graph.input();
        try (CompiledGraph<String, Object> g = kiln.compile(s2, third.bind(Geo::hideBehindObject, s2), OPTIONS)) {
            ActorTaskException e = assertThrows(ActorTaskException.class, () -> g.execute("x").get());
            assertTrue(e.getMessage().contains("cannot send the result of Geo.hideBehindObject through c1 to another JVM")
                    && e.getMessage().contains("Kiln.local(KilnOptions.defaults().register(WorkerJvmTest.Secret"
                    + ".class))"), e.getMessage());
            ActorTaskException again = assertThrows(ActorTaskException.class, () -> g.execute("y").get());
            assertEquals(1, again.sequence(), "the graph stays usable and fails each such execution");
        }
    }

    @Test
    void dynamicCallsReachWorkerActors() throws Exception {
        ActorRef<Geo> geo = kiln.actor(Geo::new, ActorOptions.process());
        assertEquals("AB", kiln.call(geo, Geo::upper, "ab").get(60, TimeUnit.SECONDS));
        assertEquals(new Point(4, 3), kiln.call(geo, Geo::flip, new Point(3, 4)).get(60, TimeUnit.SECONDS));
        InputNode<String> in = Graph.input();
        try (CompiledGraph<String, String> g = kiln.compile(in, geo.bind(Geo::upper, in))) {
            assertEquals("X", g.execute("x").get(Duration.ofSeconds(60)));
            // held by an open graph: the call runs on the worker between two of its executions
            assertEquals("CD", kiln.call(geo, Geo::upper, "cd").get(60, TimeUnit.SECONDS));
            assertEquals("Y", g.execute("y").get(Duration.ofSeconds(60)));
            // and serves a second graph at the same time; closing it leaves the first running
            InputNode<String> in2 = Graph.input();
            try (CompiledGraph<String, String> g2 = kiln.compile(in2, geo.bind(Geo::join, in2, Graph.constant("!")))) {
                assertEquals("z|!", g2.execute("z").get(Duration.ofSeconds(60)));
                assertEquals("W", g.execute("w").get(Duration.ofSeconds(60)));
            }
            assertEquals("V", g.execute("v").get(Duration.ofSeconds(60)));
        }
        ActorRef<Inc> inc = kiln.actor(() -> new Inc(0.5f), ActorOptions.process());
        try (Tensor t = Tensor.of(new float[] {1, 2, 3}, 3)) {
            assertEquals(List.of(1.5f, 2.5f, 3.5f), floats(kiln.call(inc, Inc::add, t).get(60, TimeUnit.SECONDS)));
        }
        ExecutionException e = assertThrows(ExecutionException.class,
                () -> kiln.call(inc, Inc::fail, "boom").get(60, TimeUnit.SECONDS));
        ActorTaskException task = assertInstanceOf(ActorTaskException.class, e.getCause());
        RemoteActorException remote = assertInstanceOf(RemoteActorException.class, task.getCause());
        assertEquals(IllegalStateException.class.getName(), remote.exceptionClass());
        assertEquals("boom", remote.remoteMessage());
        assertTrue(remote.remoteStackTrace().contains("Inc.fail"), remote.remoteStackTrace());
    }

    @Test
    void aFactoryThatThrowsInTheWorkerFailsActorCreation() {
        ActorCreationException e = assertThrows(ActorCreationException.class,
                () -> kiln.actor(() -> new Inc(Float.parseFloat("not a number")), ActorOptions.process()));
        assertTrue(e.getMessage().contains("NumberFormatException"), e.getMessage());
    }

    @Test
    void aWorkerKilledWithSigkillFailsEveryPendingExecutionWithinTwoSeconds() throws Exception {
        ActorRef<Inc> slow = kiln.actor(() -> new Inc(0f), ActorOptions.process("victim"));
        long pid = kiln.call(slow, Inc::pid).get(60, TimeUnit.SECONDS);
        InputNode<Integer> in = Graph.input();
        CompiledGraph<Integer, Integer> g = kiln.compile(in, slow.bind(Inc::sleepThenEcho, in), OPTIONS);
        assertEquals(7, g.execute(7).get());
        List<GraphFuture<Integer>> pending = new ArrayList<>();
        for (int i = 0; i < 5; i++) {
            pending.add(g.execute(i));
        }
        List<Path> filesBefore = shmFilesOf(pid);
        assertFalse(filesBefore.isEmpty(), "the worker writes the graph's output channel");
        long killed = System.nanoTime();
        ProcessHandle.of(pid).orElseThrow().destroyForcibly();
        for (GraphFuture<Integer> f : pending) {
            ActorDiedException e = assertThrows(ActorDiedException.class, () -> f.get(Duration.ofSeconds(10)));
            assertTrue(e.getMessage().contains("victim"), e.getMessage());
        }
        long millis = TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - killed);
        assertTrue(millis < 2_000, "futures failed " + millis + " ms after the kill");
        assertTrue(g.isClosed());
        assertThrows(ActorDiedException.class, () -> g.execute(1));
        ExecutionException call = assertThrows(ExecutionException.class,
                () -> kiln.call(slow, Inc::pid).get(10, TimeUnit.SECONDS));
        assertInstanceOf(ActorDiedException.class, call.getCause());
        awaitNoFiles(pid);
    }

    /**
     * Runs {@code count} executions of {@code g} with up to {@code maxInflight} in flight, calling {@code chaos}
     * after execution {@code at} was submitted (with input -1 if {@code poison}); every execution must give
     * {@code x + add} or be lost to a restart whose message names {@code victim}; a poisoned one must be lost.
     *
     * @return how many were lost
     */
    private static int pipelinedThrough(CompiledGraph<Integer, Integer> g, int count, int add, int at, boolean poison,
                                        Runnable chaos, String victim) {
        List<GraphFuture<Integer>> futures = new ArrayList<>();
        for (int i = 0; i < count; i++) {
            futures.add(g.execute(poison && i == at ? -1 : i)); // waits for capacity, and for a restart
            if (i == at) {
                chaos.run();
            }
        }
        int lost = 0;
        for (int i = 0; i < count; i++) {
            try {
                assertEquals(i + add, futures.get(i).get(), "execution " + i);
                assertFalse(poison && i == at, "the poisoned execution cannot succeed");
            } catch (GraphRestartedException e) {
                assertTrue(e.getMessage().contains(victim), e.getMessage());
                lost++;
            }
        }
        return lost;
    }

    @Test
    void withRestartAWorkerKilledWithSigkillIsReplacedByANewJvmAndTheGraphRunsOn() throws Exception {
        ActorRef<Inc> near = kiln.actor(() -> new Inc(1f), ActorOptions.process("victim"));
        ActorRef<Inc> far = kiln.actor(() -> new Inc(10f), ActorOptions.process("bystander"));
        ActorRef<Inc> local = kiln.actor(() -> new Inc(100f));
        long victimPid = kiln.call(near, Inc::pid).get(60, TimeUnit.SECONDS);
        long bystanderPid = kiln.call(far, Inc::pid).get(60, TimeUnit.SECONDS);
        InputNode<Integer> in = Graph.input();
        CompileOptions restart = OPTIONS.maxInflight(8).onActorDeath(ActorDeathPolicy.RESTART);
        try (CompiledGraph<Integer, Integer> g = kiln.compile(in, local.bind(Inc::plus, far.bind(Inc::plus,
                near.bind(Inc::plus, in))), restart)) {
            assertTrue(g.plan().toString().contains("SHARED_MEMORY"), g.plan().toString());
            int lost = pipelinedThrough(g, 3000, 111, 1000, false,
                    () -> ProcessHandle.of(victimPid).orElseThrow().destroyForcibly(), "victim");
            assertTrue(lost <= 8, lost + " lost: at most those in flight at the kill");
            assertEquals(1, g.restarts());
            for (int i = 0; i < 100; i++) {
                assertEquals(i + 111, g.execute(i).get(), "after the restart");
            }
        }
        long newPid = kiln.call(near, Inc::pid).get(60, TimeUnit.SECONDS);
        assertNotEquals(victimPid, newPid, "the actor lives in a new JVM named victim");
        assertEquals(bystanderPid, kiln.call(far, Inc::pid).get(60, TimeUnit.SECONDS), "the other worker lives on");
        assertTrue(kiln.hosts().stream().anyMatch(h -> h.name().equals("victim")), kiln.hosts().toString());
        awaitNoFiles(victimPid);
    }

    @Test
    void twoRestartingGraphsWhoseActorsSharedAKilledJvmBothMoveToOneNewJvmAndAFailingOneCloses() throws Exception {
        ActorRef<Inc> first = kiln.actor(() -> new Inc(1f), ActorOptions.process("shared"));
        ActorRef<Inc> second = kiln.actor(() -> new Inc(2f), ActorOptions.process("shared"));
        ActorRef<Inc> third = kiln.actor(() -> new Inc(3f), ActorOptions.process("shared"));
        long pid = kiln.call(first, Inc::pid).get(60, TimeUnit.SECONDS);
        CompileOptions restart = OPTIONS.onActorDeath(ActorDeathPolicy.RESTART);
        InputNode<Integer> inA = Graph.input();
        InputNode<Integer> inB = Graph.input();
        InputNode<Integer> inC = Graph.input();
        try (CompiledGraph<Integer, Integer> a = kiln.compile(inA, first.bind(Inc::plus, inA), restart);
             CompiledGraph<Integer, Integer> b = kiln.compile(inB, second.bind(Inc::plus, inB), restart);
             CompiledGraph<Integer, Integer> c = kiln.compile(inC, third.bind(Inc::plus, inC), OPTIONS)) {
            assertEquals(11, a.execute(10).get());
            assertEquals(12, b.execute(10).get());
            assertEquals(13, c.execute(10).get());
            ProcessHandle.of(pid).orElseThrow().destroyForcibly();
            KilnTestSupport.awaitTrue("both restarting graphs restart", KilnTestSupport.SOON,
                    () -> a.restarts() == 1 && b.restarts() == 1);
            assertEquals(21, a.execute(20).get());
            assertEquals(22, b.execute(20).get());
            KilnTestSupport.awaitTrue("the graph without restart closes", KilnTestSupport.SOON, c::isClosed);
            assertThrows(ActorDiedException.class, () -> c.execute(1));
        }
        long newPid = kiln.call(first, Inc::pid).get(60, TimeUnit.SECONDS);
        assertNotEquals(pid, newPid);
        assertEquals(newPid, kiln.call(second, Inc::pid).get(60, TimeUnit.SECONDS), "one new JVM named shared");
        ExecutionException dead = assertThrows(ExecutionException.class,
                () -> kiln.call(third, Inc::pid).get(60, TimeUnit.SECONDS));
        assertInstanceOf(ActorDiedException.class, dead.getCause(), "the FAIL graph's actor stays dead");
        awaitNoFiles(pid);
    }

    @Test
    void withRestartALoopThatDiesInAWorkerIsRecreatedInTheSameJvm() throws Exception {
        ActorRef<Inc> fragile = kiln.actor(() -> new Inc(5f), ActorOptions.process("host").name("fragile"));
        long pid = kiln.call(fragile, Inc::pid).get(60, TimeUnit.SECONDS);
        InputNode<Integer> in = Graph.input();
        try (CompiledGraph<Integer, Integer> g = kiln.compile(in, fragile.bind(Inc::plusOrDie, in),
                OPTIONS.maxInflight(4).onActorDeath(ActorDeathPolicy.RESTART))) {
            int lost = pipelinedThrough(g, 400, 5, 100, true, () -> { }, "fragile");
            assertTrue(lost >= 1 && lost <= 4, lost + " lost");
            assertEquals(1, g.restarts());
        }
        assertEquals(pid, kiln.call(fragile, Inc::pid).get(60, TimeUnit.SECONDS), "recreated in the same worker JVM");
        assertEquals(8, kiln.call(fragile, Inc::plusOrDie, 3).get(60, TimeUnit.SECONDS));
    }

    /** Keeps the tensor it was given, against the rules, and reads the previous one on the next call. */
    public static final class Hoarder {
        private Tensor kept;

        public float readPreviousThenKeep(Tensor t) {
            float previous = kept == null ? -1 : kept.getFloat(0);
            kept = t;
            return previous;
        }
    }

    @Test
    void withCheckViewsATensorKeptPastItsMethodFailsLoudlyInTheWorker() throws Exception {
        ActorRef<Hoarder> h = kiln.actor(Hoarder::new, ActorOptions.process("hoarder"));
        InputNode<Tensor> in = Graph.input();
        try (CompiledGraph<Tensor, Float> g = kiln.compile(in, h.bind(Hoarder::readPreviousThenKeep, in),
                OPTIONS.checkViews(true))) {
            assertEquals(-1f, g.execute(Tensor.of(new float[] {5}, 1)).get());
            ActorTaskException e = assertThrows(ActorTaskException.class,
                    () -> g.execute(Tensor.of(new float[] {6}, 1)).get());
            RemoteActorException remote = assertInstanceOf(RemoteActorException.class, e.getCause());
            assertEquals(IllegalStateException.class.getName(), remote.exceptionClass());
            assertTrue(remote.remoteMessage().contains("closed"), remote.remoteMessage());
            // the first view is still the one kept, and still closed: later calls fail the same way
            assertThrows(ActorTaskException.class, () -> g.execute(Tensor.of(new float[] {7}, 1)).get());
        }
    }

    @Test
    void aLoopThatDiesInAWorkerFailsItsGraphAndNotTheOthers() throws Exception {
        ActorRef<Inc> doomed = kiln.actor(() -> new Inc(0f), ActorOptions.process("shared").name("doomed"));
        ActorRef<Inc> healthy = kiln.actor(() -> new Inc(0f), ActorOptions.process("shared"));
        InputNode<Integer> in = Graph.input();
        InputNode<Tensor> tin = Graph.input();
        try (CompiledGraph<Integer, Integer> bad = kiln.compile(in, doomed.bind(Inc::die, in), OPTIONS);
             CompiledGraph<Tensor, Tensor> good = kiln.compile(tin, healthy.bind(Inc::add, tin), OPTIONS);
             Tensor t = Tensor.of(new float[] {1}, 1)) {
            ActorDiedException e = assertThrows(ActorDiedException.class, () -> bad.execute(1).get());
            assertTrue(e.getMessage().contains("doomed") && e.getMessage().contains("OutOfMemoryError"), e.getMessage());
            assertTrue(bad.isClosed());
            for (int i = 0; i < 20; i++) {
                assertEquals(List.of(1f), floats(good.execute(t).get()), "the other graph of the same worker runs on");
            }
        }
    }

    @Test
    void slotGrowthOffFailsTheExecutionNamingTheEdgeSizeAndOption() throws Exception {
        ActorRef<Inc> a = kiln.actor(() -> new Inc(1f), ActorOptions.process());
        InputNode<Tensor> in = Graph.input();
        try (CompiledGraph<Tensor, Tensor> g = kiln.compile(in, a.bind(Inc::add, in),
                OPTIONS.bufferBytes(64 << 10).slotGrowth(false));
             Tensor small = Tensor.of(new float[1024], 1024);
             Tensor big = Tensor.of(new float[64 << 10], 64 << 10)) {
            assertEquals(1024, g.execute(small).get().numel());
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> g.execute(big));
            assertTrue(e.getMessage().contains("slotGrowth") && e.getMessage().contains("c0"), e.getMessage());
            assertEquals(1024, g.execute(small).get().numel(), "nothing was lost or stuck");
        }
    }

    @Test
    void sharedMemoryCanBeAskedForInOneJvm() throws Exception {
        ActorRef<Geo> a = kiln.actor(Geo::new);
        ActorRef<Geo> b = kiln.actor(Geo::new);
        InputNode<String> in = Graph.input();
        Node<String> out = b.bind(Geo::join, a.bind(Geo::upper, in).withTransport(Transport.SHARED_MEMORY), in);
        try (CompiledGraph<String, String> g = kiln.compile(in, out, OPTIONS)) {
            for (int i = 0; i < 100; i++) {
                assertEquals("Q" + i + "|q" + i, g.execute("q" + i).get());
            }
            assertFalse(shmFilesOf(ProcessHandle.current().pid()).isEmpty());
        }
        assertEquals(List.of(), shmFilesOf(ProcessHandle.current().pid()));
    }

    @Test
    void outputsTensorIsBuiltInTheSlotAndReadInPlace() throws Exception {
        Builder producer = new Builder();
        Builder consumer = new Builder();
        ActorRef<Builder> a = kiln.actor(() -> producer);
        ActorRef<Builder> b = kiln.actor(() -> consumer);
        InputNode<Integer> in = Graph.input();
        Node<Float> out = b.bind(Builder::sum, a.bind(Builder::ramp, in).withTransport(Transport.SHARED_MEMORY));
        try (CompiledGraph<Integer, Float> g = kiln.compile(in, out, OPTIONS)) {
            for (int n = 1; n <= 64; n++) {
                assertEquals(n * (n - 1) / 2f, g.execute(n).get());
                assertEquals(producer.builtAt, consumer.readAt, "the consumer reads the bytes the producer wrote");
            }
        }
        ActorRef<Builder> remote = kiln.actor(Builder::new, ActorOptions.process());
        InputNode<Integer> in2 = Graph.input();
        try (CompiledGraph<Integer, Tensor> g = kiln.compile(in2, remote.bind(Builder::ramp, in2), OPTIONS)) {
            assertEquals(List.of(0f, 1f, 2f, 3f), floats(g.execute(4).get()));
        }
        assertEquals(List.of(0f, 1f), floats(kiln.call(a, Builder::ramp, 2).get(10, TimeUnit.SECONDS)),
                "outside a graph it allocates");
    }

    @Test
    void compileRefusesAPlanTheSharedMemoryDirectoryCannotHold() throws Exception {
        ActorRef<Geo> a = kiln.actor(Geo::new);
        ActorRef<Geo> b = kiln.actor(Geo::new);
        InputNode<String> in = Graph.input();
        Node<String> out = b.bind(Geo::upper, a.bind(Geo::upper, in).withTransport(Transport.SHARED_MEMORY));
        dev.kiln.compiler.GraphCompileException e = assertThrows(dev.kiln.compiler.GraphCompileException.class,
                () -> kiln.compile(in, out, OPTIONS.bufferBytes(1L << 50)));
        assertTrue(e.getMessage().contains("bufferBytes") && e.getMessage().contains(SHM.toString()), e.getMessage());
        assertEquals(List.of(), shmFilesOf(ProcessHandle.current().pid()), "nothing was created");
        ActorRef<Geo> c = kiln.actor(Geo::new);
        InputNode<String> in2 = Graph.input();
        try (CompiledGraph<String, String> g = kiln.compile(in2, c.bind(Geo::upper, b.bind(Geo::upper, in2)), OPTIONS)) {
            assertEquals("OK", g.execute("ok").get(), "the actors were let go");
        }
    }

    private static List<Float> floats(Tensor t) {
        List<Float> out = new ArrayList<>();
        for (float f : t.toFloatArray()) {
            out.add(f);
        }
        return out;
    }

    private static void awaitNoFiles(long pid) throws Exception {
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
        while (!shmFilesOf(pid).isEmpty() && System.nanoTime() < deadline) {
            Thread.sleep(20);
        }
        assertEquals(List.of(), shmFilesOf(pid), "files of the killed worker are removed");
    }

    private static List<Path> shmFilesOf(long pid) throws IOException {
        try (Stream<Path> files = Files.list(SHM)) {
            return files.filter(f -> f.getFileName().toString().startsWith("kiln-" + pid + "-")).toList();
        }
    }
}
