package dev.kiln;

import dev.kiln.compiler.ActorDeathPolicy;
import dev.kiln.compiler.CompileOptions;
import dev.kiln.graph.ActorRef;
import dev.kiln.graph.Graph;
import dev.kiln.graph.InputNode;
import dev.kiln.graph.Node;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicReference;
import java.util.logging.Handler;
import java.util.logging.LogRecord;
import java.util.logging.Logger;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * {@link ActorDeathPolicy#RESTART} in one JVM: an actor whose method throws a {@code VirtualMachineError} ends its
 * thread (as {@code ActorThread} handles it), and the graph recreates it from its factory, redeploys and runs on.
 * Every execution either returns its exact result or fails with {@link GraphRestartedException}; executions after a
 * restart are exact; restarts are bounded; {@code execute} waits for a restart; the {@link ActorRef} reaches the new
 * incarnation. Without RESTART the graph still closes.
 */
@Timeout(value = 180, unit = TimeUnit.SECONDS)
class RecoveryTest {

    private static final Duration GET = Duration.ofSeconds(60);
    private static final CompileOptions RESTART = CompileOptions.defaults().maxInflight(8).getTimeout(GET)
            .submitTimeout(GET).onActorDeath(ActorDeathPolicy.RESTART.limit(10, Duration.ofMinutes(5)));

    /** Doubles; its thread dies of a StackOverflowError on a negative input. Knows which incarnation it is. */
    static final class Mortal {
        private final int incarnation;

        Mortal(AtomicInteger made) {
            this.incarnation = made.incrementAndGet();
        }

        int twice(int x) {
            if (x < 0) {
                throw new StackOverflowError("poisoned by " + x);
            }
            return 2 * x;
        }

        int incarnation() {
            return incarnation;
        }
    }

    /** Adds one; counts how often it was made. */
    static final class Inc {
        Inc(AtomicInteger made) {
            made.incrementAndGet();
        }

        int inc(int x) {
            return x + 1;
        }
    }

    /** Whether {@code input} fed to {@code inc -> twice -> inc} gives its exact result, or a poison's failure. */
    private static void checkOutcome(int input, GraphFuture<Integer> f, String mortal, List<Integer> lost) {
        try {
            int y = f.get(GET);
            assertTrue(input + 1 >= 0, "a poisoned execution (input " + input + ") returned " + y);
            assertEquals(2 * (input + 1) + 1, y, "execution of input " + input);
        } catch (GraphRestartedException e) {
            assertTrue(e.getMessage().contains(mortal) && e.getMessage().contains("restarts"), e.getMessage());
            assertEquals(f.sequence(), e.sequence());
            lost.add(input);
        }
    }

    @Test
    void anActorWhoseThreadDiesIsRecreatedAndOnlyTheExecutionsInFlightFail() {
        AtomicInteger mortals = new AtomicInteger();
        AtomicInteger incs = new AtomicInteger();
        List<LogRecord> logged = new ArrayList<>();
        Handler capture = capture(logged);
        Logger.getLogger("dev.kiln").addHandler(capture);
        try (Kiln kiln = Kiln.local()) {
            ActorRef<Inc> up = kiln.actor(() -> new Inc(incs));
            ActorRef<Mortal> mortal = kiln.actor(() -> new Mortal(mortals), ActorOptions.defaults().name("mortal"));
            ActorRef<Inc> down = kiln.actor(() -> new Inc(incs));
            InputNode<Integer> in = Graph.input();
            Node<Integer> out = down.bind(Inc::inc, mortal.bind(Mortal::twice, up.bind(Inc::inc, in)));
            List<Integer> lost = new ArrayList<>();
            try (CompiledGraph<Integer, Integer> g = kiln.compile(in, out, RESTART)) {
                List<Integer> inputs = new ArrayList<>();
                List<GraphFuture<Integer>> futures = new ArrayList<>();
                for (int i = 0; i < 6000; i++) {
                    int input = i == 1000 || i == 2500 || i == 4000 ? -2 : i; // up makes -2 into -1: poison
                    inputs.add(input);
                    futures.add(g.execute(input)); // waits for capacity, and for a restart in progress
                }
                for (int i = 0; i < futures.size(); i++) {
                    checkOutcome(inputs.get(i), futures.get(i), "mortal", lost);
                }
                assertEquals(3, lost.stream().filter(x -> x == -2).count(), "the poisoned executions fail: " + lost);
                assertTrue(lost.size() <= 3 * 8, "only executions in flight (at most 8) fail per death: " + lost);
                assertEquals(3, g.restarts());
                assertFalse(g.isClosed());
                for (int i = 0; i < 200; i++) {
                    assertEquals(2 * (i + 1) + 1, g.execute(i).get(GET), "after the restarts");
                }
            }
            assertEquals(4, mortals.get(), "the dead actor was recreated from its factory, three times");
            assertEquals(2, incs.get(), "the live actors were not recreated");
            // The ActorRef reaches the latest incarnation; its state (here, its number) is the new one's.
            assertEquals(4, kiln.call(mortal, Mortal::incarnation).get(30, TimeUnit.SECONDS));
            assertEquals(10, kiln.call(mortal, Mortal::twice, 5).get(30, TimeUnit.SECONDS));
            KilnTestSupport.awaitTrue("a warning says what died and that the graph restarts", KilnTestSupport.SOON,
                    () -> logged(logged, m -> m.contains("restarting (restart 1") && m.contains("mortal")
                            && m.contains("StackOverflowError")));
            KilnTestSupport.awaitTrue("a line says each restart is done", KilnTestSupport.SOON,
                    () -> logged(logged, m -> m.contains("restarted (restart 3)") && m.contains("recreated mortal")));
        } catch (Exception e) {
            throw new AssertionError(e);
        } finally {
            Logger.getLogger("dev.kiln").removeHandler(capture);
        }
    }

    @Test
    void withoutRestartADeathStillClosesTheGraphAndTheActorStaysDead() throws Exception {
        AtomicInteger mortals = new AtomicInteger();
        try (Kiln kiln = Kiln.local()) {
            ActorRef<Mortal> mortal = kiln.actor(() -> new Mortal(mortals));
            InputNode<Integer> in = Graph.input();
            CompiledGraph<Integer, Integer> g = kiln.compile(in, mortal.bind(Mortal::twice, in),
                    CompileOptions.defaults().getTimeout(GET));
            assertEquals(ActorDeathPolicy.FAIL, g.options().onActorDeath());
            assertEquals(4, g.execute(2).get());
            assertThrows(ActorDiedException.class, () -> g.execute(-1).get());
            assertThrows(ActorDiedException.class, () -> g.execute(1));
            assertTrue(g.isClosed());
            assertEquals(0, g.restarts());
            assertEquals(1, mortals.get(), "nothing was recreated");
            ExecutionException call = assertThrows(ExecutionException.class,
                    () -> kiln.call(mortal, Mortal::incarnation).get(30, TimeUnit.SECONDS));
            assertInstanceOf(ActorDiedException.class, call.getCause());
        }
    }

    @Test
    void moreDeathsThanTheLimitFailTheGraphAsWithoutRestart() throws Exception {
        AtomicInteger mortals = new AtomicInteger();
        try (Kiln kiln = Kiln.local()) {
            ActorRef<Mortal> mortal = kiln.actor(() -> new Mortal(mortals), ActorOptions.defaults().name("frail"));
            InputNode<Integer> in = Graph.input();
            CompileOptions twice = RESTART.onActorDeath(ActorDeathPolicy.RESTART.limit(2, Duration.ofMinutes(5)));
            CompiledGraph<Integer, Integer> g = kiln.compile(in, mortal.bind(Mortal::twice, in), twice);
            for (int death = 1; death <= 2; death++) {
                assertThrows(GraphRestartedException.class, () -> g.execute(-1).get());
                assertEquals(6, g.execute(3).get(), "after restart " + death);
                assertEquals(death, g.restarts());
            }
            ActorDiedException third = assertThrows(ActorDiedException.class, () -> g.execute(-1).get());
            assertTrue(third.getMessage().contains("frail") && third.getMessage().contains("restarted 2 times within")
                    && third.getMessage().contains("ActorDeathPolicy"), third.getMessage());
            ActorDiedException later = assertThrows(ActorDiedException.class, () -> g.execute(1));
            assertTrue(later.getMessage().contains("limit"), later.getMessage());
            assertTrue(g.isClosed());
            assertEquals(2, g.restarts());
            assertEquals(3, mortals.get());
        }
    }

    /**
     * A Mortal whose factory, from its second incarnation on, counts {@code entered} down and waits for the test to
     * open {@code open}.
     */
    private static ActorFactory<Mortal> slowToRecreate(AtomicInteger made, CountDownLatch entered,
                                                       CountDownLatch open) {
        return () -> {
            if (made.get() >= 1) {
                entered.countDown();
                if (!open.await(60, TimeUnit.SECONDS)) {
                    throw new IllegalStateException("the test never let the factory finish");
                }
            }
            return new Mortal(made);
        };
    }

    /** A graph of one {@link #slowToRecreate} actor that has just died once: its restart waits for {@code open}. */
    private static CompiledGraph<Integer, Integer> restartingUntil(Kiln kiln, AtomicInteger made, CountDownLatch open,
                                                                   CompileOptions options) {
        ActorRef<Mortal> mortal = kiln.actor(slowToRecreate(made, new CountDownLatch(1), open));
        InputNode<Integer> in1 = Graph.input();
        CompiledGraph<Integer, Integer> g = kiln.compile(in1, mortal.bind(Mortal::twice, in1), options);
        assertThrows(GraphRestartedException.class, () -> g.execute(-1).get());
        return g;
    }

    /** Runs {@code call} on a thread of its own; returns once that thread waits (in execute, for the restart). */
    private static Thread waitingIn(Runnable call) {
        Thread t = Thread.ofPlatform().start(call);
        KilnTestSupport.awaitTrue("execute waits for the restart", KilnTestSupport.SOON,
                () -> t.getState() == Thread.State.TIMED_WAITING);
        return t;
    }

    @Test
    void executeDuringARestartWaitsForItAndThenRunsOnTheNewActor() throws Exception {
        AtomicInteger mortals = new AtomicInteger();
        CountDownLatch open = new CountDownLatch(1);
        try (Kiln kiln = Kiln.local()) {
            try (CompiledGraph<Integer, Integer> g = restartingUntil(kiln, mortals, open, RESTART)) {
                AtomicReference<Object> outcome = new AtomicReference<>();
                Thread submitter = waitingIn(() -> {
                    try {
                        outcome.set(g.execute(21).get(GET));
                    } catch (RuntimeException e) {
                        outcome.set(e);
                    }
                });
                assertEquals(0, g.restarts(), "the factory is still blocked");
                assertEquals(null, outcome.get(), "execute has not returned");
                open.countDown();
                submitter.join(GET);
                assertEquals(42, outcome.get());
                assertEquals(1, g.restarts());
                assertEquals(2, mortals.get());
            }
        }
    }

    @Test
    void aRestartLongerThanTheSubmitTimeoutFailsExecuteWithNothingStarted() throws Exception {
        AtomicInteger mortals = new AtomicInteger();
        CountDownLatch open = new CountDownLatch(1);
        try (Kiln kiln = Kiln.local()) {
            try (CompiledGraph<Integer, Integer> g = restartingUntil(kiln, mortals, open,
                    RESTART.submitTimeout(Duration.ofMillis(200)))) {
                CapacityExceededException e = assertThrows(CapacityExceededException.class, () -> g.execute(1));
                assertTrue(e.getMessage().contains("restarting") && e.getMessage().contains("submitTimeout")
                        && e.getMessage().contains("not started"), e.getMessage());
                open.countDown();
                KilnTestSupport.awaitTrue("the restart finishes", KilnTestSupport.SOON, () -> g.restarts() == 1);
                assertEquals(8, g.execute(4).get());
            }
        }
    }

    @Test
    void closeDuringARestartAbandonsItAndFreesTheActors() throws Exception {
        AtomicInteger mortals = new AtomicInteger();
        CountDownLatch open = new CountDownLatch(1);
        CountDownLatch recreating = new CountDownLatch(1);
        try (Kiln kiln = Kiln.local()) {
            ActorRef<Mortal> mortal = kiln.actor(slowToRecreate(mortals, recreating, open));
            ActorRef<Inc> inc = kiln.actor(() -> new Inc(new AtomicInteger()));
            InputNode<Integer> in = Graph.input();
            CompiledGraph<Integer, Integer> g = kiln.compile(in, inc.bind(Inc::inc, mortal.bind(Mortal::twice, in)),
                    RESTART.teardownTimeout(Duration.ofMillis(500)));
            assertThrows(GraphRestartedException.class, () -> g.execute(-1).get());
            AtomicReference<Object> waiting = new AtomicReference<>();
            Thread submitter = waitingIn(() -> {
                try {
                    waiting.set(g.execute(1));
                } catch (RuntimeException e) {
                    waiting.set(e);
                }
            });
            assertTrue(recreating.await(60, TimeUnit.SECONDS), "the restart reaches the factory");
            g.close();
            submitter.join(GET);
            assertInstanceOf(GraphClosedException.class, waiting.get(), "a waiting execute fails as the graph closes");
            assertTrue(g.isClosed());
            assertThrows(GraphClosedException.class, () -> g.execute(1));
            open.countDown(); // the abandoned restart finishes creating the actor, then frees it
            KilnTestSupport.awaitTrue("the recreated actor is free for dynamic calls", KilnTestSupport.SOON, () -> {
                try {
                    return kiln.call(mortal, Mortal::incarnation).get(10, TimeUnit.SECONDS) == 2
                            && kiln.call(inc, Inc::inc, 1).get(10, TimeUnit.SECONDS) == 2;
                } catch (IllegalStateException | ExecutionException held) {
                    return false; // still held by the abandoned deployment, or not recreated yet
                } catch (Exception e) {
                    throw new AssertionError(e);
                }
            });
            assertEquals(0, g.restarts());
        }
    }

    @Test
    void aFactoryThatFailsOnRecreationFailsTheGraphAndTheActorStaysDead() throws Exception {
        AtomicInteger made = new AtomicInteger();
        try (Kiln kiln = Kiln.local()) {
            ActorRef<Mortal> mortal = kiln.actor(() -> {
                if (made.get() >= 1) {
                    throw new IllegalStateException("the model file is gone");
                }
                return new Mortal(made);
            }, ActorOptions.defaults().name("once"));
            InputNode<Integer> in = Graph.input();
            CompiledGraph<Integer, Integer> g = kiln.compile(in, mortal.bind(Mortal::twice, in), RESTART);
            assertThrows(GraphRestartedException.class, () -> g.execute(-1).get());
            ActorDiedException e = assertThrows(ActorDiedException.class, () -> g.execute(1).get());
            assertTrue(e.getMessage().contains("could not restart") && e.getMessage().contains("the model file is gone"),
                    e.getMessage());
            assertTrue(g.isClosed());
            ExecutionException call = assertThrows(ExecutionException.class,
                    () -> kiln.call(mortal, Mortal::incarnation).get(30, TimeUnit.SECONDS));
            assertInstanceOf(ActorDiedException.class, call.getCause(), "the old incarnation stays, dead");
        }
    }

    @Test
    void asyncExecutionsLostInARestartFailAndTheirCallbacksMayResubmit() throws Exception {
        AtomicInteger mortals = new AtomicInteger();
        try (Kiln kiln = Kiln.local()) {
            ActorRef<Mortal> mortal = kiln.actor(() -> new Mortal(mortals));
            ActorRef<Inc> inc = kiln.actor(() -> new Inc(new AtomicInteger()));
            InputNode<Integer> in = Graph.input();
            Node<Integer> doubled = mortal.bind(Mortal::twice, in);
            try (CompiledGraph<Integer, List<Object>> g = kiln.compile(in, Graph.outputs(List.of(doubled,
                    inc.bind(Inc::inc, doubled))), RESTART)) {
                List<CompletableFuture<Object>> results = new ArrayList<>();
                for (int i = 0; i < 2000; i++) {
                    int input = i % 500 == 499 ? -1 : i;
                    // a lost execution is submitted again from its callback (the poison is not)
                    results.add(retrying(g, input));
                }
                CompletableFuture.allOf(results.toArray(CompletableFuture<?>[]::new)).exceptionally(e -> null)
                        .get(120, TimeUnit.SECONDS);
                for (int i = 0; i < results.size(); i++) {
                    Object r = results.get(i).get();
                    if (i % 500 == 499) {
                        assertEquals("lost", r, "the poison execution " + i);
                    } else {
                        assertEquals(List.of(2 * i, 2 * i + 1), r, "execution " + i);
                    }
                }
                KilnTestSupport.awaitTrue("four restarts", KilnTestSupport.SOON, () -> g.restarts() == 4);
            }
        }
    }

    @Test
    void executionsRacingWithDeathsEitherFinishExactlyOrFailAsRestarted() throws Exception {
        for (int round = 0; round < 15; round++) {
            AtomicInteger mortals = new AtomicInteger();
            try (Kiln kiln = Kiln.local()) {
                ActorRef<Mortal> a = kiln.actor(() -> new Mortal(mortals), ActorOptions.defaults().name("racer"));
                InputNode<Integer> in = Graph.input();
                try (CompiledGraph<Integer, Integer> g = kiln.compile(in, a.bind(Mortal::twice, in),
                        RESTART.maxInflight(64))) {
                    List<GraphFuture<Integer>> futures = new ArrayList<>();
                    for (int i = 0; i < 3000; i++) {
                        futures.add(g.execute(i % 1000 == 30 + round ? -1 : i));
                    }
                    int lost = 0;
                    for (int i = 0; i < futures.size(); i++) {
                        try {
                            assertEquals(2 * i, futures.get(i).get(GET), "round " + round + ", execution " + i);
                        } catch (GraphRestartedException e) {
                            lost++;
                        }
                    }
                    assertEquals(3, g.restarts(), "round " + round);
                    assertTrue(lost >= 3 && lost <= 3 * 64, "round " + round + ": " + lost + " lost");
                }
            }
        }
    }

    /** Runs {@code input}, submitting it again from the future's callback as long as a restart loses it. */
    private static CompletableFuture<Object> retrying(CompiledGraph<Integer, List<Object>> g, int input) {
        return g.executeAsync(input).<Object>thenApply(r -> r).exceptionallyCompose(e -> {
            Throwable cause = e instanceof java.util.concurrent.CompletionException c ? c.getCause() : e;
            if (!(cause instanceof GraphRestartedException)) {
                return CompletableFuture.failedFuture(cause);
            }
            return input < 0 ? CompletableFuture.completedFuture("lost") : retrying(g, input);
        });
    }

    private static boolean logged(List<LogRecord> records, java.util.function.Predicate<String> message) {
        synchronized (records) {
            return records.stream().anyMatch(r -> message.test(r.getMessage()));
        }
    }

    private static Handler capture(List<LogRecord> into) {
        return new Handler() {
            @Override
            public void publish(LogRecord r) {
                synchronized (into) {
                    into.add(r);
                }
            }

            @Override
            public void flush() {
            }

            @Override
            public void close() {
            }
        };
    }

}
