package dev.kiln;

import dev.kiln.compiler.CompileOptions;
import dev.kiln.compiler.ExecutionPlan;
import dev.kiln.compiler.GraphCompileException;
import dev.kiln.compiler.IdleMode;
import dev.kiln.graph.ActorRef;
import dev.kiln.graph.Graph;
import dev.kiln.graph.InputNode;
import dev.kiln.graph.InputNode4;
import dev.kiln.graph.Node;
import dev.kiln.graph.Tuple3;
import dev.kiln.graph.Tuple4;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.BitSet;
import java.util.List;
import java.util.Random;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Real graphs on real actor threads, checked against exact expected results. */
@Timeout(120)
class EndToEndTest {

    /** A pure stage: {@code apply(x) = 3x + add}; also plain 2- and 3-argument methods. */
    static final class Stage {
        private final int add;

        Stage(int add) {
            this.add = add;
        }

        int apply(int x) {
            return x * 3 + add;
        }

        int sum(int a, int b) {
            return a + b;
        }

        int mix(int a, int b, int c) {
            return a * 100 + b * 10 + c + add;
        }

        String label(String prefix, int x) {
            return prefix + x;
        }

        static int expected(int add, int x) {
            return x * 3 + add;
        }
    }

    /** Records the order of its calls within one execution; {@code third} returns and clears the record. */
    static final class Recorder {
        private final StringBuilder log = new StringBuilder();

        int first(int x) {
            log.append('a');
            return x + 1;
        }

        int second(int x) {
            log.append('b');
            return x + 2;
        }

        String third(int x) {
            log.append('c');
            String s = log + ":" + x;
            log.setLength(0);
            return s;
        }
    }

    /** Throws for the inputs marked in {@code failing}; otherwise adds 1. */
    static final class Flaky {
        private final BitSet failing;

        Flaky(BitSet failing) {
            this.failing = failing;
        }

        int check(int value, int original) {
            if (failing.get(original)) {
                throw new IllegalArgumentException("bad input " + original);
            }
            return value + 1;
        }
    }

    /** Adds 1 and counts its calls. */
    static final class Counting {
        private final AtomicLong calls;

        Counting(AtomicLong calls) {
            this.calls = calls;
        }

        int inc(int x) {
            calls.incrementAndGet();
            return x + 1;
        }
    }

    /** @return x through a chain of n stages with adds 1..n */
    private static int chain(int n, int x) {
        for (int add = 1; add <= n; add++) {
            x = Stage.expected(add, x);
        }
        return x;
    }

    private static int chain4(int x) {
        return Stage.expected(4, Stage.expected(3, Stage.expected(2, Stage.expected(1, x))));
    }

    /** in -> s1 -> s2 -> s3 -> s4, with adds 1..4. */
    private static Node<Integer> chainOf4(Kiln kiln, InputNode<Integer> in) {
        Node<Integer> x = in;
        for (int k = 1; k <= 4; k++) {
            int add = k;
            ActorRef<Stage> s = kiln.actor(() -> new Stage(add));
            x = s.bind(Stage::apply, x);
        }
        return x;
    }

    @Test
    void singleActor() {
        try (Kiln kiln = Kiln.local()) {
            ActorRef<Stage> s = kiln.actor(() -> new Stage(5));
            InputNode<Integer> in = Graph.input();
            try (CompiledGraph<Integer, Integer> g = kiln.compile(in, s.bind(Stage::apply, in))) {
                for (int i = -50; i < 50; i++) {
                    assertEquals(Stage.expected(5, i), g.execute(i).get(10, TimeUnit.SECONDS));
                }
            }
        }
    }

    @Test
    void chainOfFourActors() {
        try (Kiln kiln = Kiln.local()) {
            InputNode<Integer> in = Graph.input();
            try (CompiledGraph<Integer, Integer> g = kiln.compile(in, chainOf4(kiln, in),
                    CompileOptions.defaults().maxInflight(4))) {
                assertEquals(5, g.plan().channels().size(), "input, three inner edges, output");
                for (int i = 0; i < 1000; i++) {
                    assertEquals(chain4(i), g.execute(i).get(10, TimeUnit.SECONDS));
                }
            }
        }
    }

    @Test
    void scatterGatherToFourActorsWithMultiOutput() {
        try (Kiln kiln = Kiln.local()) {
            InputNode<Integer> in = Graph.input();
            List<Node<?>> outs = new ArrayList<>();
            for (int k = 1; k <= 4; k++) {
                int add = k * 10;
                ActorRef<Stage> s = kiln.actor(() -> new Stage(add));
                outs.add(s.bind(Stage::apply, in));
            }
            try (CompiledGraph<Integer, List<Object>> g = kiln.compile(in, Graph.outputs(List.of(outs.toArray(Node<?>[]::new))))) {
                assertEquals(1, g.plan().inputArity());
                for (int i = 0; i < 500; i++) {
                    List<Object> expected = List.of(Stage.expected(10, i), Stage.expected(20, i),
                            Stage.expected(30, i), Stage.expected(40, i));
                    assertEquals(expected, g.execute(i).get(10, TimeUnit.SECONDS));
                }
            }
        }
    }

    @Test
    void diamond() {
        try (Kiln kiln = Kiln.local()) {
            ActorRef<Stage> top = kiln.actor(() -> new Stage(1));
            ActorRef<Stage> left = kiln.actor(() -> new Stage(2));
            ActorRef<Stage> right = kiln.actor(() -> new Stage(3));
            ActorRef<Stage> bottom = kiln.actor(() -> new Stage(4));
            InputNode<Integer> in = Graph.input();
            Node<Integer> t = top.bind(Stage::apply, in);
            Node<Integer> l = left.bind(Stage::apply, t);
            Node<Integer> r = right.bind(Stage::apply, t);
            Node<Integer> b = bottom.bind(Stage::sum, l, r);
            try (CompiledGraph<Integer, Integer> g = kiln.compile(in, b)) {
                for (int i = 0; i < 500; i++) {
                    int tv = Stage.expected(1, i);
                    assertEquals(Stage.expected(2, tv) + Stage.expected(3, tv), g.execute(i).get(10, TimeUnit.SECONDS));
                }
            }
        }
    }

    @Test
    void sameActorThreeTimesRunsItsCallsInBindOrder() {
        try (Kiln kiln = Kiln.local()) {
            ActorRef<Recorder> rec = kiln.actor(Recorder::new);
            ActorRef<Stage> s = kiln.actor(() -> new Stage(0));
            InputNode<Integer> in = Graph.input();
            // first waits for another actor; second and third could run before it, but were bound after it.
            Node<Integer> a = rec.bind(Recorder::first, s.bind(Stage::apply, in));
            Node<Integer> b = rec.bind(Recorder::second, in);
            Node<String> c = rec.bind(Recorder::third, in);
            try (CompiledGraph<Integer, List<Object>> g = kiln.compile(in, Graph.outputs(List.of(a, b, c)),
                    CompileOptions.defaults().maxInflight(3))) {
                for (int i = 0; i < 500; i++) {
                    assertEquals(List.of(3 * i + 1, i + 2, "abc:" + i), g.execute(i).get(10, TimeUnit.SECONDS));
                }
            }
        }
    }

    @Test
    void sameActorThreeTimesInterleavedWithAnother() {
        try (Kiln kiln = Kiln.local()) {
            ActorRef<Recorder> rec = kiln.actor(Recorder::new);
            ActorRef<Stage> s = kiln.actor(() -> new Stage(1));
            InputNode<Integer> in = Graph.input();
            Node<Integer> a = rec.bind(Recorder::first, in);
            Node<Integer> b = rec.bind(Recorder::second, s.bind(Stage::apply, a));
            Node<String> c = rec.bind(Recorder::third, s.bind(Stage::apply, b));
            try (CompiledGraph<Integer, String> g = kiln.compile(in, c)) {
                for (int i = 0; i < 500; i++) {
                    int expected = Stage.expected(1, Stage.expected(1, i + 1) + 2);
                    assertEquals("abc:" + expected, g.execute(i).get(10, TimeUnit.SECONDS));
                }
            }
        }
    }

    @Test
    void constantsMixedWithNodes() {
        try (Kiln kiln = Kiln.local()) {
            ActorRef<Stage> s1 = kiln.actor(() -> new Stage(0));
            ActorRef<Stage> s2 = kiln.actor(() -> new Stage(1));
            InputNode<Integer> in = Graph.input();
            Node<Integer> seven = Graph.constant(7);
            Node<Integer> x = s1.bind(Stage::sum, Graph.constant(5), in);
            Node<Integer> y = s2.bind(Stage::mix, x, seven, in);
            Node<String> z = s2.bind(Stage::label, Graph.constant("y="), y);
            // constants only: still runs once per execution; one constant node bound twice passes its value twice
            Node<Integer> k = s1.bind(Stage::sum, Graph.constant(35), seven);
            try (CompiledGraph<Integer, Tuple4<Integer, Integer, String, Integer>> g = kiln.compile(in,
                    Graph.outputs(x, y, z, k))) {
                for (int i = 0; i < 300; i++) {
                    int yv = (i + 5) * 100 + 70 + i + 1;
                    Tuple4<Integer, Integer, String, Integer> r = g.execute(i).get(10, TimeUnit.SECONDS);
                    assertEquals(new Tuple4<>(i + 5, yv, "y=" + yv, 42), r);
                    int typed = r.first() + r.second() + r.fourth(); // no cast: the tuple's components are typed
                    assertEquals(i + 5 + yv + 42, typed);
                    assertEquals("y=" + yv, r.third());
                }
            }
        }
    }

    @Test
    void twoAndThreeArgumentMethods() {
        try (Kiln kiln = Kiln.local()) {
            ActorRef<Stage> a = kiln.actor(() -> new Stage(0));
            ActorRef<Stage> b = kiln.actor(() -> new Stage(0));
            ActorRef<Stage> c = kiln.actor(() -> new Stage(3));
            InputNode<Integer> in = Graph.input();
            Node<Integer> x = a.bind(Stage::apply, in);
            Node<Integer> y = b.bind(Stage::apply, in);
            Node<Integer> two = c.bind(Stage::sum, x, y);
            Node<Integer> three = c.bind(Stage::mix, x, y, two);
            try (CompiledGraph<Integer, List<Object>> g = kiln.compile(in, Graph.outputs(List.of(two, three)))) {
                for (int i = 0; i < 300; i++) {
                    int xv = 3 * i;
                    int twoV = xv + xv;
                    assertEquals(List.of(twoV, xv * 100 + xv * 10 + twoV + 3), g.execute(i).get(10, TimeUnit.SECONDS));
                }
            }
        }
    }

    @Test
    void multiArgumentInput() {
        try (Kiln kiln = Kiln.local()) {
            ActorRef<Stage> a = kiln.actor(() -> new Stage(0));
            ActorRef<Stage> b = kiln.actor(() -> new Stage(0));
            InputNode4<Integer, Integer, Integer, String> in = Graph.input4();
            Node<Integer> m = a.bind(Stage::mix, in.first(), in.second(), in.third());
            Node<Integer> s = b.bind(Stage::sum, in.third(), m);
            Node<String> l = b.bind(Stage::label, in.fourth(), in.first());
            try (CompiledGraph<Tuple4<Integer, Integer, Integer, String>, Tuple3<Integer, Integer, String>> g =
                         kiln.compile(in, Graph.outputs(m, s, l))) {
                assertEquals(4, g.plan().inputArity());
                for (int i = 0; i < 300; i++) {
                    int mv = i * 100 + (i + 1) * 10 + (i + 2);
                    assertEquals(new Tuple3<>(mv, i + 2 + mv, "#" + i),
                            g.execute(new Tuple4<>(i, i + 1, i + 2, "#")).get(10, TimeUnit.SECONDS));
                }
                NullPointerException e = assertThrows(NullPointerException.class, () -> g.execute(null));
                assertEquals("the graph takes a Tuple4 of its arguments, execute got null", e.getMessage());
            }
        }
    }

    /** Methods without arguments, passing nulls, and throwing a plain Error. */
    static final class Odd {
        private int counter;

        int next() {
            return ++counter;
        }

        String echo(String s) {
            return s;
        }

        String describe(String s, Integer n) {
            return s + "/" + n;
        }

        int strict(int x) {
            if (x == 3) {
                throw new AssertionError("three");
            }
            return x;
        }
    }

    @Test
    void aGraphWithoutInputRunsOncePerExecution() {
        try (Kiln kiln = Kiln.local()) {
            ActorRef<Odd> a = kiln.actor(Odd::new);
            ActorRef<Stage> s = kiln.actor(() -> new Stage(0));
            Node<Integer> n = a.bind(Odd::next);
            try (CompiledGraph<Object, Integer> g = kiln.compile(Graph.input(), s.bind(Stage::sum, n, Graph.constant(100)))) {
                assertEquals(0, g.plan().inputArity());
                for (int i = 1; i <= 50; i++) {
                    assertEquals(100 + i, g.execute(null).get(10, TimeUnit.SECONDS));
                }
            }
        }
    }

    @Test
    void nullsFlowThroughTheGraph() {
        try (Kiln kiln = Kiln.local()) {
            ActorRef<Odd> a = kiln.actor(Odd::new);
            ActorRef<Odd> b = kiln.actor(Odd::new);
            InputNode<String> in = Graph.input();
            Node<String> e = a.bind(Odd::echo, in);
            Node<String> d = b.bind(Odd::describe, e, Graph.constant(null));
            try (CompiledGraph<String, List<Object>> g = kiln.compile(in, Graph.outputs(List.of(e, d)))) {
                assertEquals(Arrays.asList(null, "null/null"), g.execute(null).get(10, TimeUnit.SECONDS));
                assertEquals(List.of("x", "x/null"), g.execute("x").get(10, TimeUnit.SECONDS));
            }
        }
    }

    @Test
    void anErrorThatIsNotAVirtualMachineErrorFailsOnlyItsExecution() {
        try (Kiln kiln = Kiln.local()) {
            ActorRef<Odd> a = kiln.actor(Odd::new);
            InputNode<Integer> in = Graph.input();
            try (CompiledGraph<Integer, Integer> g = kiln.compile(in, a.bind(Odd::strict, in))) {
                for (int i = 0; i < 6; i++) {
                    GraphFuture<Integer> f = g.execute(i);
                    if (i == 3) {
                        ActorTaskException e = assertThrows(ActorTaskException.class, () -> f.get(10, TimeUnit.SECONDS));
                        assertInstanceOf(AssertionError.class, e.getCause());
                    } else {
                        assertEquals(i, f.get(10, TimeUnit.SECONDS));
                    }
                }
            }
        }
    }

    @Test
    @Timeout(300) // about 1 s alone; a loaded shared 2-core machine can make it 30x slower
    void hundredThousandPipelinedExecutionsThroughAChainOfFour() {
        int maxInflight = 8;
        try (Kiln kiln = Kiln.local()) {
            InputNode<Integer> in = Graph.input();
            try (CompiledGraph<Integer, Integer> g = kiln.compile(in, chainOf4(kiln, in),
                    CompileOptions.defaults().maxInflight(maxInflight))) {
                ArrayDeque<GraphFuture<Integer>> outstanding = new ArrayDeque<>();
                int read = 0;
                for (int i = 0; i < 100_000; i++) {
                    if (outstanding.size() == maxInflight) {
                        assertEquals(chain4(read), outstanding.poll().get(10, TimeUnit.SECONDS), "execution " + read);
                        read++;
                    }
                    GraphFuture<Integer> f = g.execute(i);
                    assertEquals(i, f.sequence());
                    outstanding.add(f);
                }
                while (!outstanding.isEmpty()) {
                    assertEquals(chain4(read), outstanding.poll().get(10, TimeUnit.SECONDS), "execution " + read);
                    read++;
                }
                assertEquals(100_000, read);
            }
        }
    }

    @Test
    void futuresReadInReverseOrderWithinAWindow() {
        int maxInflight = 8;
        try (Kiln kiln = Kiln.local()) {
            InputNode<Integer> in = Graph.input();
            try (CompiledGraph<Integer, Integer> g = kiln.compile(in, chainOf4(kiln, in),
                    CompileOptions.defaults().maxInflight(maxInflight))) {
                List<GraphFuture<Integer>> window = new ArrayList<>();
                for (int base = 0; base < 20_000; base += maxInflight) {
                    window.clear();
                    for (int j = 0; j < maxInflight; j++) {
                        window.add(g.execute(base + j));
                    }
                    for (int j = maxInflight - 1; j >= 0; j--) {
                        assertEquals(chain4(base + j), window.get(j).get(10, TimeUnit.SECONDS));
                    }
                }
            }
        }
    }

    @Test
    void randomUserExceptionsFailExactlyTheirExecutions() {
        int n = 10_000;
        int maxInflight = 6;
        Random random = new Random(20240611L);
        BitSet failing = new BitSet(n);
        for (int i = 0; i < n; i++) {
            if (random.nextInt(10) == 0) {
                failing.set(i);
            }
        }
        AtomicLong upstreamCalls = new AtomicLong();
        AtomicLong downstreamCalls = new AtomicLong();
        try (Kiln kiln = Kiln.local()) {
            ActorRef<Counting> up = kiln.actor(() -> new Counting(upstreamCalls));
            ActorRef<Flaky> flaky = kiln.actor(() -> new Flaky(failing));
            ActorRef<Counting> down1 = kiln.actor(() -> new Counting(downstreamCalls));
            ActorRef<Counting> down2 = kiln.actor(() -> new Counting(downstreamCalls));
            InputNode<Integer> in = Graph.input();
            Node<Integer> out = down2.bind(Counting::inc,
                    down1.bind(Counting::inc, flaky.bind(Flaky::check, up.bind(Counting::inc, in), in)));
            try (CompiledGraph<Integer, Integer> g = kiln.compile(in, out, CompileOptions.defaults().maxInflight(maxInflight))) {
                ArrayDeque<GraphFuture<Integer>> outstanding = new ArrayDeque<>();
                int[] read = {0};
                Runnable checkNext = () -> {
                    int i = read[0]++;
                    GraphFuture<Integer> f = outstanding.poll();
                    if (failing.get(i)) {
                        ActorTaskException e = assertThrows(ActorTaskException.class, () -> f.get(10, TimeUnit.SECONDS));
                        assertEquals(flaky.name(), e.actor());
                        assertTrue(e.method().endsWith("Flaky.check"), e.method());
                        assertEquals(i, e.sequence());
                        IllegalArgumentException cause = assertInstanceOf(IllegalArgumentException.class, e.getCause());
                        assertEquals("bad input " + i, cause.getMessage());
                    } else {
                        assertEquals(i + 4, f.get(10, TimeUnit.SECONDS), "execution " + i);
                    }
                };
                for (int i = 0; i < n; i++) {
                    if (outstanding.size() == maxInflight) {
                        checkNext.run();
                    }
                    outstanding.add(g.execute(i));
                }
                while (!outstanding.isEmpty()) {
                    checkNext.run();
                }
                int failures = failing.cardinality();
                assertTrue(failures > n / 20 && failures < n / 5, "about 10% fail: " + failures);
                assertEquals(n, upstreamCalls.get(), "calls upstream of the failing one all ran");
                assertEquals(2L * (n - failures), downstreamCalls.get(), "calls downstream of a failure are skipped");
                assertEquals(n + 4, g.execute(n).get(10, TimeUnit.SECONDS), "the graph stays usable");
            }
        }
    }

    @ParameterizedTest
    @EnumSource(value = IdleMode.class, names = {"BACKOFF", "BLOCKING"})
    void chainWorksInEachIdleMode(IdleMode mode) {
        try (Kiln kiln = Kiln.local()) {
            InputNode<Integer> in = Graph.input();
            try (CompiledGraph<Integer, Integer> g = kiln.compile(in, chainOf4(kiln, in),
                    CompileOptions.defaults().maxInflight(4).idle(mode))) {
                assertEquals(mode, g.options().idle());
                List<GraphFuture<Integer>> fs = new ArrayList<>();
                for (int i = 0; i < 2000; i++) {
                    fs.add(g.execute(i));
                    if (fs.size() == 4) {
                        for (int j = 0; j < fs.size(); j++) {
                            assertEquals(chain4(i - 3 + j), fs.get(j).get(10, TimeUnit.SECONDS));
                        }
                        fs.clear();
                    }
                }
                // one at a time: every hop waits for a parked peer
                for (int i = 0; i < 200; i++) {
                    assertEquals(chain4(i), g.execute(i).get(10, TimeUnit.SECONDS));
                }
            }
        }
    }

    @Test
    void anActorAnotherGraphHoldsKeepsItsOwnThreadAndAGuestIsHeldAlone() throws Exception {
        int cores = Runtime.getRuntime().availableProcessors();
        try (Kiln kiln = Kiln.local()) {
            List<ActorRef<Stage>> stages = new ArrayList<>();
            for (int k = 1; k <= 2 * cores + 2; k++) {
                int add = k;
                stages.add(kiln.actor(() -> new Stage(add)));
            }
            ActorRef<Stage> second = stages.get(1); // a guest of the first actor's thread in a shared chain
            InputNode<Integer> alone = Graph.input();
            try (CompiledGraph<Integer, Integer> other = kiln.compile(alone, second.bind(Stage::apply, alone))) {
                InputNode<Integer> in = Graph.input();
                Node<Integer> x = in;
                for (ActorRef<Stage> s : stages) {
                    x = s.bind(Stage::apply, x);
                }
                try (CompiledGraph<Integer, Integer> g = kiln.compile(in, x)) {
                    ExecutionPlan.ActorSchedule held = g.plan().schedules().stream()
                            .filter(s -> s.actor() == second.id()).findFirst().orElseThrow();
                    assertFalse(held.sharesThread(), g.plan()::toString);
                    assertTrue(g.plan().schedules().stream().anyMatch(ExecutionPlan.ActorSchedule::sharesThread),
                            g.plan()::toString);
                    for (int i = 0; i < 200; i++) {
                        assertEquals(chain(stages.size(), i), g.execute(i).get(10, TimeUnit.SECONDS));
                        assertEquals(Stage.expected(2, i), other.execute(i).get(10, TimeUnit.SECONDS));
                    }
                }
            }
            // Now the shared chain holds its guests alone: a graph that wants one of them is refused.
            InputNode<Integer> in = Graph.input();
            Node<Integer> x = in;
            for (ActorRef<Stage> s : stages) {
                x = s.bind(Stage::apply, x);
            }
            try (CompiledGraph<Integer, Integer> g = kiln.compile(in, x)) {
                ExecutionPlan.ActorSchedule guest = g.plan().schedules().stream()
                        .filter(ExecutionPlan.ActorSchedule::sharesThread).findFirst().orElseThrow();
                ActorRef<Stage> taken = stages.stream().filter(s -> s.id() == guest.actor()).findFirst().orElseThrow();
                InputNode<Integer> late = Graph.input();
                GraphCompileException e = assertThrows(GraphCompileException.class,
                        () -> kiln.compile(late, taken.bind(Stage::apply, late)));
                assertTrue(e.getMessage().contains(g.toString()) && e.getMessage().contains("THREAD_PER_ACTOR"),
                        e.getMessage());
                assertEquals(chain(stages.size(), 3), g.execute(3).get(10, TimeUnit.SECONDS));
            }
        }
    }

    @Test
    void actorsBeyondTheCoresShareThreadsByDefault() {
        int cores = Runtime.getRuntime().availableProcessors();
        try (Kiln kiln = Kiln.local()) {
            List<ActorRef<Stage>> stages = new ArrayList<>();
            for (int k = 1; k <= cores + 1; k++) {
                int add = k;
                stages.add(kiln.actor(() -> new Stage(add)));
            }
            InputNode<Integer> in = Graph.input();
            Node<Integer> x = in;
            for (ActorRef<Stage> s : stages) {
                x = s.bind(Stage::apply, x);
            }
            try (CompiledGraph<Integer, Integer> g = kiln.compile(in, x)) {
                assertEquals(cores, g.plan().schedules().stream().filter(s -> !s.sharesThread()).count(),
                        g.plan()::toString);
                for (int i = 0; i < 100; i++) {
                    assertEquals(chain(cores + 1, i), g.execute(i).get(10, TimeUnit.SECONDS));
                }
            }
            InputNode<Integer> again = Graph.input();
            Node<Integer> y = again;
            for (ActorRef<Stage> s : stages) {
                y = s.bind(Stage::apply, y);
            }
            try (CompiledGraph<Integer, Integer> g = kiln.compile(again, y,
                    CompileOptions.defaults().actorThreads(CompileOptions.THREAD_PER_ACTOR))) {
                assertTrue(g.plan().schedules().stream().noneMatch(ExecutionPlan.ActorSchedule::sharesThread), g.plan()::toString);
                assertEquals(chain(cores + 1, 7), g.execute(7).get(10, TimeUnit.SECONDS));
            }
        }
    }
}
