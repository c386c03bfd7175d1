package dev.kiln.compiler;

import dev.kiln.compiler.ExecutionPlan.ActorSchedule;
import dev.kiln.compiler.ExecutionPlan.AllReduce;
import dev.kiln.compiler.ExecutionPlan.ChannelSpec;
import dev.kiln.compiler.ExecutionPlan.Read;
import dev.kiln.compiler.ExecutionPlan.Write;
import dev.kiln.compiler.GpuActors.Gpu;
import dev.kiln.compiler.TestActors.Text;
import dev.kiln.compiler.Topology.ActorPlacement;
import dev.kiln.graph.ActorRef;
import dev.kiln.graph.Graph;
import dev.kiln.graph.InputNode;
import dev.kiln.graph.Node;
import dev.kiln.graph.Transport;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

import static dev.kiln.compiler.GpuActors.GIB;
import static dev.kiln.compiler.GpuActors.gpu;
import static dev.kiln.compiler.GpuActors.gpuActor;
import static dev.kiln.compiler.TestActors.text;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

/** Which actors the compiler puts on one thread ({@link ThreadPlanner}), and how the plan shows it. */
@Timeout(30)
class ThreadSharingTest {

    private static final ActorPlacement WORKER = new ActorPlacement("localhost", "w1");

    /** Actors s0 .. s(n-1), ids 1 .. n. */
    private static List<ActorRef<Text>> stages(int n) {
        List<ActorRef<Text>> stages = new ArrayList<>();
        for (int i = 0; i < n; i++) {
            stages.add(text(i + 1, "s" + i));
        }
        return stages;
    }

    /** {@code s(n-1).upper(... s0.upper(input))}. */
    private static Node<String> chain(List<ActorRef<Text>> stages, InputNode<String> in) {
        Node<String> x = in;
        for (ActorRef<Text> s : stages) {
            x = s.bind(Text::upper, x);
        }
        return x;
    }

    /** Every actor in the driver's JVM, which has {@code cores} cores (0: unknown). */
    private static Topology inDriver(List<? extends ActorRef<?>> actors, int cores) {
        Map<Integer, ActorPlacement> placements = new HashMap<>();
        actors.forEach(a -> placements.put(a.id(), ActorPlacement.IN_DRIVER));
        return new Topology(ActorPlacement.IN_DRIVER, placements, Topology.PeerAccess.ALL,
                cores == 0 ? Map.of() : Map.of(ActorPlacement.IN_DRIVER, cores));
    }

    /** @return each actor's carrier, by actor id, in schedule order */
    private static Map<Integer, Integer> carriers(ExecutionPlan plan) {
        Map<Integer, Integer> carriers = new LinkedHashMap<>();
        plan.schedules().forEach(s -> carriers.put(s.actor(), s.carrier()));
        return carriers;
    }

    /** @return a map of actor id to carrier id, from pairs {@code actor, carrier, actor, carrier, ...} */
    private static Map<Integer, Integer> expected(int... pairs) {
        Map<Integer, Integer> m = new LinkedHashMap<>();
        for (int i = 0; i < pairs.length; i += 2) {
            m.put(pairs[i], pairs[i + 1]);
        }
        return m;
    }

    private static Map<Integer, Integer> ownThreads(int actors) {
        Map<Integer, Integer> m = new LinkedHashMap<>();
        for (int id = 1; id <= actors; id++) {
            m.put(id, id);
        }
        return m;
    }

    @Test
    void aChainOfEightOnTwoCoresRunsOnTwoCarriersOfFourConsecutiveActors() {
        List<ActorRef<Text>> s = stages(8);
        ExecutionPlan plan = GraphCompiler.compile(chain(s, Graph.input()), inDriver(s, 2), CompileOptions.defaults());
        assertEquals(expected(1, 1, 2, 1, 3, 1, 4, 1, 5, 5, 6, 5, 7, 5, 8, 5), carriers(plan));
    }

    @Test
    void autoGivesEachActorAThreadWhileTheyFitTheCores() {
        List<ActorRef<Text>> two = stages(2);
        assertEquals(ownThreads(2), carriers(GraphCompiler.compile(chain(two, Graph.input()), inDriver(two, 2),
                CompileOptions.defaults())));
        List<ActorRef<Text>> four = stages(4);
        assertEquals(ownThreads(4), carriers(GraphCompiler.compile(chain(four, Graph.input()), inDriver(four, 4),
                CompileOptions.defaults())));
        assertEquals(expected(1, 1, 2, 1, 3, 3, 4, 3), carriers(GraphCompiler.compile(chain(four, Graph.input()),
                inDriver(four, 2), CompileOptions.defaults())), "more actors than cores: they share");
    }

    @Test
    void autoWithUnknownCoresGivesEachActorAThread() {
        List<ActorRef<Text>> s = stages(8);
        assertEquals(ownThreads(8), carriers(GraphCompiler.compile(chain(s, Graph.input()), inDriver(s, 0),
                CompileOptions.defaults())));
    }

    @Test
    void oneThreadPutsEveryActorOnTheFirst() {
        List<ActorRef<Text>> s = stages(8);
        ExecutionPlan plan = GraphCompiler.compile(chain(s, Graph.input()), inDriver(s, 0),
                CompileOptions.defaults().actorThreads(1));
        assertEquals(expected(1, 1, 2, 1, 3, 1, 4, 1, 5, 1, 6, 1, 7, 1, 8, 1), carriers(plan));
    }

    @Test
    void threadPerActorNeverShares() {
        List<ActorRef<Text>> s = stages(32);
        ExecutionPlan plan = GraphCompiler.compile(chain(s, Graph.input()), inDriver(s, 2),
                CompileOptions.defaults().actorThreads(CompileOptions.THREAD_PER_ACTOR));
        assertEquals(ownThreads(32), carriers(plan));
    }

    @Test
    void threadsCapGroupsOfConsecutiveActors() {
        List<ActorRef<Text>> s = stages(8);
        ExecutionPlan plan = GraphCompiler.compile(chain(s, Graph.input()), inDriver(s, 16),
                CompileOptions.defaults().actorThreads(3));
        assertEquals(expected(1, 1, 2, 1, 3, 1, 4, 4, 5, 4, 6, 4, 7, 7, 8, 7), carriers(plan));
    }

    @Test
    void groupsAreBalancedByComputesNotByActors() {
        List<ActorRef<Text>> s = stages(4);
        InputNode<String> in = Graph.input();
        // s0 computes three times (upper, lower, upper), then s1, s2, s3 once each.
        Node<String> x = s.get(0).bind(Text::upper, s.get(0).bind(Text::lower, s.get(0).bind(Text::upper, in)));
        x = s.get(3).bind(Text::upper, s.get(2).bind(Text::upper, s.get(1).bind(Text::upper, x)));
        ExecutionPlan plan = GraphCompiler.compile(x, inDriver(s, 2), CompileOptions.defaults());
        assertEquals(expected(1, 1, 2, 2, 3, 2, 4, 2), carriers(plan));
    }

    @Test
    void actorsGoInTopologicalOrderNotInIdOrder() {
        List<ActorRef<Text>> s = stages(4);
        InputNode<String> in = Graph.input();
        // Bound s3, s2, s1, s0: the first two of the chain are s3 and s2.
        Node<String> x = s.get(0).bind(Text::upper, s.get(1).bind(Text::upper, s.get(2).bind(Text::upper,
                s.get(3).bind(Text::upper, in))));
        ExecutionPlan plan = GraphCompiler.compile(x, inDriver(s, 2), CompileOptions.defaults());
        assertEquals(expected(4, 4, 3, 4, 2, 2, 1, 2), carriers(plan));
    }

    @Test
    void anActorWithAGpuKeepsItsThread() {
        List<ActorRef<Text>> s = stages(4);
        ActorRef<Gpu> g = gpuActor(9, "g");
        InputNode<String> in = Graph.input();
        Node<String> x = s.get(1).bind(Text::upper, s.get(0).bind(Text::upper, in));
        Node<String> y = s.get(3).bind(Text::upper, s.get(2).bind(Text::upper, g.bind(Gpu::label, x)));
        Map<Integer, ActorPlacement> placements = new HashMap<>();
        s.forEach(a -> placements.put(a.id(), ActorPlacement.IN_DRIVER));
        placements.put(g.id(), gpu(0));
        Topology topology = new Topology(ActorPlacement.IN_DRIVER, placements, Topology.PeerAccess.ALL,
                Map.of(ActorPlacement.IN_DRIVER, 3));
        ExecutionPlan plan = GraphCompiler.compile(y, topology, CompileOptions.defaults());
        // 3 cores, one for g: the four others share 2 threads.
        assertEquals(expected(1, 1, 2, 1, 9, 9, 3, 3, 4, 3), carriers(plan));
    }

    @Test
    void anActorInAnAllReduceKeepsItsThread() {
        ActorPlacement driver = ActorPlacement.IN_DRIVER;
        List<ChannelSpec> channels = List.of(
                new ChannelSpec(0, 0, ExecutionPlan.DRIVER, List.of(1, 2), 2, 8, Transport.IN_PROCESS, "one JVM"),
                new ChannelSpec(1, 1, 1, List.of(2), 2, 8, Transport.IN_PROCESS, "one JVM"),
                new ChannelSpec(2, 2, 2, List.of(3), 2, 8, Transport.IN_PROCESS, "one JVM"));
        // The compiler gives every all-reduce member a GPU; the planner does not rely on it.
        List<ActorSchedule> schedules = List.of(
                new ActorSchedule(1, "a", driver, 2, List.of(new Read(0, 0, 0), new Write(1, 0))),
                new ActorSchedule(2, "b", driver, 3, List.of(new Read(0, 1, 0), new Read(1, 0, 1),
                        new AllReduce(0, 0, 1, 2), new Write(2, 2))),
                new ActorSchedule(3, "c", driver, 1, List.of(new Read(2, 0, 0))));
        List<ActorSchedule> shared = ThreadPlanner.share(schedules, channels,
                new Topology(driver, Map.of(1, driver, 2, driver, 3, driver)), CompileOptions.defaults()
                        .actorThreads(2));
        assertEquals(List.of(1, 2, 1), shared.stream().map(ActorSchedule::carrier).toList(),
                "b keeps its thread (one of the two), a and c share the other");
    }

    @Test
    void anActorWithAChannelToAnotherJvmKeepsItsThread() {
        List<ActorRef<Text>> s = stages(5);
        Map<Integer, ActorPlacement> placements = new HashMap<>();
        s.forEach(a -> placements.put(a.id(), WORKER));
        placements.put(s.get(0).id(), ActorPlacement.IN_DRIVER);
        Topology topology = new Topology(ActorPlacement.IN_DRIVER, placements, Topology.PeerAccess.ALL,
                Map.of(ActorPlacement.IN_DRIVER, 2, WORKER, 2));
        ExecutionPlan plan = GraphCompiler.compile(chain(s, Graph.input()), topology, CompileOptions.defaults());
        // s1 reads from the driver's JVM and s4 writes to it (shared memory): alone; s2 and s3 share the one
        // thread the worker's 2 cores leave them.
        assertEquals(Transport.SHARED_MEMORY, plan.channels().get(1).transport());
        assertEquals(expected(1, 1, 2, 2, 3, 3, 4, 3, 5, 5), carriers(plan));
    }

    @Test
    void actorsOfDifferentJvmsNeverShare() {
        List<ActorRef<Text>> s = stages(8);
        Map<Integer, ActorPlacement> placements = new HashMap<>();
        for (int i = 0; i < 8; i++) {
            placements.put(s.get(i).id(), i < 4 ? ActorPlacement.IN_DRIVER : WORKER);
        }
        InputNode<String> in = Graph.input();
        Node<String> driverChain = chain(s.subList(0, 4), in);
        Node<String> workerChain = chain(s.subList(4, 8), in);
        ExecutionPlan plan = GraphCompiler.compile(Graph.outputs(driverChain, workerChain),
                new Topology(ActorPlacement.IN_DRIVER, placements), CompileOptions.defaults().actorThreads(1));
        // The input goes to both JVMs (shared memory), so s0 and s4 read another JVM's channel and keep their
        // threads, as does s7, whose output the driver reads through shared memory. One thread left per JVM.
        assertEquals(expected(1, 1, 2, 2, 3, 2, 4, 2, 5, 5, 6, 6, 7, 6, 8, 8), carriers(plan));
    }

    @Test
    void thePlanSaysWhichActorsShareAThread() {
        List<ActorRef<Text>> s = stages(4);
        ExecutionPlan plan = GraphCompiler.compile(chain(s, Graph.input()), inDriver(s, 0),
                CompileOptions.defaults().actorThreads(2).maxInflight(2));
        assertEquals("""
                ExecutionPlan: 4 actors, 5 channels, 1 input arg, 1 output, maxInflight 2
                channels:
                  c0 input: driver -> [s0], IN_PROCESS (AUTO: writer and readers in one JVM), 2 slots
                  c1 s0.upper: s0 -> [s1], IN_PROCESS (AUTO: writer and readers in one JVM), 2 slots
                  c2 s1.upper: s1 -> [s2], IN_PROCESS (AUTO: writer and readers in one JVM), 2 slots
                  c3 s2.upper: s2 -> [s3], IN_PROCESS (AUTO: writer and readers in one JVM), 2 slots
                  c4 s3.upper: s3 -> [driver], IN_PROCESS (AUTO: writer and readers in one JVM), 2 slots
                actor s0 @ localhost/driver:
                  READ    c0 -> l0
                  COMPUTE Text.upper(l0) -> l1
                  WRITE   l1 -> c1
                actor s1 @ localhost/driver, on the thread of s0:
                  READ    c1 -> l0
                  COMPUTE Text.upper(l0) -> l1
                  WRITE   l1 -> c2
                actor s2 @ localhost/driver:
                  READ    c2 -> l0
                  COMPUTE Text.upper(l0) -> l1
                  WRITE   l1 -> c3
                actor s3 @ localhost/driver, on the thread of s2:
                  READ    c3 -> l0
                  COMPUTE Text.upper(l0) -> l1
                  WRITE   l1 -> c4
                threads:
                  localhost/driver: [s0 s1] [s2 s3]
                driver: WRITE c0, READ c4
                """, plan.toString());
        String dot = plan.toDot();
        assertEquals(1, dot.split("label=\"s1 \\(on the thread of s0\\)\"", -1).length - 1, dot);
        assertEquals(1, dot.split("label=\"s3 \\(on the thread of s2\\)\"", -1).length - 1, dot);
        assertEquals(1, dot.split("label=\"s0\"", -1).length - 1, dot);
    }

    @Test
    void aPlanWithoutSharingPrintsNoThreads() {
        List<ActorRef<Text>> s = stages(2);
        String text = GraphCompiler.compile(chain(s, Graph.input()), inDriver(s, 2), CompileOptions.defaults())
                .toString();
        assertEquals(-1, text.indexOf("threads:"), text);
        assertEquals(-1, text.indexOf("on the thread of"), text);
    }

    @Test
    void groupsAreContiguousNonEmptyAndAsLightAsPossible() {
        assertArrayEquals(new int[] {0, 4}, ThreadPlanner.groups(new int[] {1, 1, 1, 1, 1, 1, 1, 1}, 2));
        assertArrayEquals(new int[] {0, 1}, ThreadPlanner.groups(new int[] {3, 1, 1, 1}, 2));
        assertArrayEquals(new int[] {0, 2, 3}, ThreadPlanner.groups(new int[] {1, 1, 1, 1}, 3),
                "three groups, none empty, although two of 2 would fit the cap");
        assertArrayEquals(new int[] {0, 1, 2}, ThreadPlanner.groups(new int[] {10, 1, 1}, 3));
        assertArrayEquals(new int[] {0}, ThreadPlanner.groups(new int[] {2, 5, 7}, 1));
    }

    @Test
    void aNegativeThreadCountIsRefused() {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> CompileOptions.defaults().actorThreads(-2));
        assertEquals("actorThreads must be >= 1, or AUTO_THREADS (0), got -2", e.getMessage());
    }

    @Test
    void coresAreCountedPerJvm() {
        ActorPlacement gpuInWorker = gpu("w1", 0, GIB);
        Topology t = new Topology(ActorPlacement.IN_DRIVER, Map.of(1, gpuInWorker), Topology.PeerAccess.ALL,
                Map.of(WORKER, 16));
        assertEquals(16, t.cores(gpuInWorker), "an actor's GPU does not change its JVM");
        assertEquals(Topology.UNKNOWN_CORES, t.cores(ActorPlacement.IN_DRIVER));
        assertThrows(IllegalArgumentException.class, () -> new Topology(ActorPlacement.IN_DRIVER, Map.of(),
                Topology.PeerAccess.ALL, Map.of(gpuInWorker, 16)));
        assertThrows(IllegalArgumentException.class, () -> new Topology(ActorPlacement.IN_DRIVER, Map.of(),
                Topology.PeerAccess.ALL, Map.of(WORKER, 0)));
    }
}
