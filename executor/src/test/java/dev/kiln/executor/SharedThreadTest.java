package dev.kiln.executor;

import dev.kiln.compiler.CompileOptions;
import dev.kiln.compiler.ExecutionPlan;
import dev.kiln.compiler.ExecutionPlan.ActorSchedule;
import dev.kiln.compiler.IdleMode;
import dev.kiln.graph.ActorRef;
import dev.kiln.graph.Graph;
import dev.kiln.graph.InputNode;
import dev.kiln.graph.Node;
import dev.kiln.transport.Channel;
import dev.kiln.transport.Waker;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.locks.LockSupport;

import static dev.kiln.executor.ActorThreadTest.await;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

/**
 * Actors sharing a thread ({@link ActorThread#attach(GraphLoop, ActorThread, int)}): a chain of actors whose loops run
 * on the first one's thread, driven from the test thread as the driver. Checks exact results, which thread runs
 * what, dynamic calls between executions, and how guests go back to their own threads.
 */
@Timeout(60)
class SharedThreadTest {

    private static final Object OWNER = "shared-graph";

    /** Adds one, and remembers the threads its methods ran on and whether two ever ran at once. */
    static final class Stage {
        final Set<String> threads = ConcurrentHashMap.newKeySet();
        final java.util.concurrent.atomic.AtomicInteger inside = new java.util.concurrent.atomic.AtomicInteger();
        final java.util.concurrent.atomic.AtomicLong overlaps = new java.util.concurrent.atomic.AtomicLong();
        long calls; // plain: the actor's methods run one at a time
        volatile boolean overflow;

        int inc(int x) {
            enter();
            try {
                threads.add(Thread.currentThread().getName());
                if (overflow && x == 1_000) {
                    throw new StackOverflowError("deep " + x);
                }
                return x + 1;
            } finally {
                inside.decrementAndGet();
            }
        }

        String where() {
            enter();
            try {
                threads.add(Thread.currentThread().getName());
                return Thread.currentThread().getName();
            } finally {
                inside.decrementAndGet();
            }
        }

        long count() {
            enter();
            try {
                return ++calls;
            } finally {
                inside.decrementAndGet();
            }
        }

        private void enter() {
            if (inside.incrementAndGet() != 1) {
                overlaps.incrementAndGet();
            }
        }
    }

    private final List<ActorThread> threads = new ArrayList<>();
    private final List<Stage> stages = new ArrayList<>();
    private final List<Throwable> deaths = new CopyOnWriteArrayList<>();
    private final List<ActorThread> died = new CopyOnWriteArrayList<>();
    private GraphLoopTest.Wired wired;
    private GraphLoop[] loops;

    @AfterEach
    void stopAll() {
        if (loops != null) {
            for (GraphLoop l : loops) {
                l.stop();
            }
        }
        for (ActorThread a : threads) {
            a.stop(5_000);
        }
    }

    /** A chain of {@code n} stages (ids 1..n) with maxInflight 8; the actors of {@code carrierOf} share threads. */
    private void chain(int n, int[] carrierOf, IdleMode idle) throws Exception {
        for (int i = 1; i <= n; i++) {
            Stage stage = new Stage();
            stages.add(stage);
            ActorThread t = new ActorThread(i, "s" + i, () -> stage);
            t.created().get(10, TimeUnit.SECONDS);
            threads.add(t);
        }
        loops = new GraphLoop[n];
        rewire(carrierOf, idle);
    }

    /** Submits {@code count} executions from {@code first}, up to 8 in flight, and checks every result. */
    private void run(int first, int count, int n) {
        Channel input = wired.input();
        Channel output = wired.output();
        int reader = wired.outputReader();
        long next = first;
        long taken = first;
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(30);
        while (taken < first + count) {
            while (next < first + count && next - taken < 8 && input.offer(next, (int) next)) {
                next++;
            }
            Object v = output.poll(reader, taken);
            if (v == Channel.NOT_READY) {
                if (System.nanoTime() - deadline > 0) {
                    fail("execution " + taken + " did not finish");
                }
                Thread.onSpinWait();
                LockSupport.parkNanos(10_000);
                continue;
            }
            assertEquals((int) taken + n, v, "execution " + taken);
            output.release(reader, taken);
            taken++;
        }
    }

    @Test
    void aChainOnOneThreadGivesExactResultsAndRunsEveryMethodOnTheCarrier() throws Exception {
        for (IdleMode idle : new IdleMode[] {IdleMode.BACKOFF, IdleMode.BLOCKING}) {
            chain(4, new int[] {1, 1, 1, 1}, idle);
            run(0, 20_000, 4);
            for (Stage s : stages) {
                assertEquals(Set.of("kiln-actor-s1"), s.threads, "every method ran on s1's thread");
            }
            for (int i = 1; i < 4; i++) {
                Thread.State state = threadOf(threads.get(i)).getState();
                assertTrue(state == Thread.State.TIMED_WAITING || state == Thread.State.WAITING,
                        "a lent actor's own thread parks: " + state);
            }
            stopAll();
            threads.clear();
            stages.clear();
        }
    }

    @Test
    void twoCarriersOfTwoActorsEach() throws Exception {
        chain(4, new int[] {1, 1, 3, 3}, IdleMode.BACKOFF);
        run(0, 20_000, 4);
        assertEquals(Set.of("kiln-actor-s1"), stages.get(1).threads);
        assertEquals(Set.of("kiln-actor-s3"), stages.get(2).threads);
        assertEquals(Set.of("kiln-actor-s3"), stages.get(3).threads);
        assertTrue(deaths.isEmpty(), deaths::toString);
    }

    @Test
    void dynamicCallsToAGuestRunOnTheCarrierBetweenExecutionsAndOnItsOwnThreadOnceGivenBack() throws Exception {
        chain(3, new int[] {1, 1, 1}, IdleMode.BLOCKING);
        run(0, 1_000, 3);
        CompletableFuture<String> during = new CompletableFuture<>();
        assertTrue(threads.get(2).submit(() -> during.complete(stages.get(2).where())));
        assertEquals("kiln-actor-s1", during.get(10, TimeUnit.SECONDS), "the carrier drains a guest's mailbox");
        run(1_000, 1_000, 3);

        for (GraphLoop l : loops) {
            l.stop();
        }
        for (ActorThread a : threads) {
            a.wake();
        }
        await("every actor let go of the graph", () -> threads.stream().allMatch(a -> a.holders().first() == null));
        CompletableFuture<String> after = new CompletableFuture<>();
        assertTrue(threads.get(2).submit(() -> after.complete(stages.get(2).where())));
        assertEquals("kiln-actor-s3", after.get(10, TimeUnit.SECONDS), "given back to its own thread");
        assertTrue(deaths.isEmpty(), deaths::toString);
        for (ActorThread a : threads) {
            assertTrue(a.isAlive());
        }
    }

    @Test
    void aGuestThatDiesLeavesTheCarrierRunning() throws Exception {
        chain(3, new int[] {1, 1, 1}, IdleMode.BACKOFF);
        stages.get(1).overflow = true; // s2 throws StackOverflowError on 1000 (its input 999 + 1)
        Channel input = wired.input();
        for (int i = 0; i < 2; i++) {
            assertTrue(input.offer(i, 999 + i));
        }
        await("s2 died", () -> !died.isEmpty());
        assertSame(threads.get(1), died.getFirst());
        assertInstanceOf(StackOverflowError.class, deaths.getFirst());
        await("s2's thread ended", () -> !threads.get(1).isAlive());
        assertInstanceOf(StackOverflowError.class, threads.get(1).death());
        assertSame(OWNER, threads.get(1).holders().first(), "a dead actor stays held by the graph it died in");
        assertTrue(threads.get(0).isAlive(), "the carrier lives on");
        CompletableFuture<String> call = new CompletableFuture<>();
        assertTrue(threads.get(0).submit(() -> call.complete(stages.get(0).where())));
        assertEquals("kiln-actor-s1", call.get(10, TimeUnit.SECONDS));
        assertEquals(1, died.size());
    }

    @Test
    void aGuestStoppedWhileLentDiesAsStoppedAndItsThreadEnds() throws Exception {
        chain(3, new int[] {1, 1, 1}, IdleMode.BLOCKING);
        run(0, 100, 3);
        assertTrue(threads.get(2).stop(5_000), "the guest's thread ends once the carrier gave it back");
        await("s3's loop died", () -> !died.isEmpty());
        assertSame(threads.get(2), died.getFirst());
        assertTrue(deaths.getFirst().getMessage().contains("actor s3 was stopped"), deaths.getFirst()::toString);
        assertTrue(threads.get(0).isAlive());
        assertFalse(threads.get(2).submit(() -> { }), "a stopped actor takes no calls");
    }

    @Test
    void aCarrierThatEndsGivesItsGuestsBack() throws Exception {
        chain(3, new int[] {1, 1, 1}, IdleMode.BLOCKING);
        run(0, 100, 3);
        assertTrue(threads.get(0).stop(5_000));
        await("s1's loop died", () -> died.contains(threads.get(0)));
        await("the guests are free",
                () -> threads.get(1).holders().first() == null && threads.get(2).holders().first() == null);
        assertTrue(loops[1].isStopped() && loops[2].isStopped());
        CompletableFuture<String> call = new CompletableFuture<>();
        assertTrue(threads.get(1).submit(() -> call.complete(stages.get(1).where())));
        assertEquals("kiln-actor-s2", call.get(10, TimeUnit.SECONDS));
        assertEquals(List.of(threads.get(0)), died, "only the carrier's own loop reports a death");
    }

    @Test
    void handOversAndGiveBacksLoseNoCallAndNeverRunAnActorOnTwoThreads() throws Exception {
        int rounds = 100;
        chain(3, new int[] {1, 1, 1}, IdleMode.BACKOFF);
        java.util.concurrent.atomic.AtomicBoolean calling = new java.util.concurrent.atomic.AtomicBoolean(true);
        List<CompletableFuture<Long>> calls = new CopyOnWriteArrayList<>();
        Thread caller = Thread.ofPlatform().name("caller").start(() -> {
            while (calling.get()) {
                for (int g = 1; g < 3; g++) {
                    Stage stage = stages.get(g);
                    CompletableFuture<Long> f = new CompletableFuture<>();
                    if (threads.get(g).submit(() -> f.complete(stage.count()))) {
                        calls.add(f);
                    }
                }
                LockSupport.parkNanos(20_000);
            }
        });
        try {
            for (int round = 0; round < rounds; round++) {
                run(0, 50, 3);
                for (GraphLoop l : loops) {
                    l.stop();
                }
                for (ActorThread a : threads) {
                    a.wake();
                }
                await("round " + round + " let go", () -> threads.stream().allMatch(a -> a.holders().first() == null));
                if (round + 1 < rounds) {
                    rewire(new int[] {1, 1, 1}, IdleMode.BACKOFF);
                }
            }
        } finally {
            calling.set(false);
            caller.join(10_000);
        }
        for (CompletableFuture<Long> f : calls) {
            f.get(10, TimeUnit.SECONDS);
        }
        long ran = 0;
        for (int g = 1; g < 3; g++) {
            Stage stage = stages.get(g);
            assertEquals(0, stage.overlaps.get(), "two threads ran s" + (g + 1) + " at once");
            assertTrue(stage.threads.contains("kiln-actor-s1"), "the carrier ran it");
            ran += stage.calls;
        }
        assertTrue(calls.size() > rounds, "calls raced the hand-overs: " + calls.size());
        assertEquals(calls.size(), ran, "every call ran exactly once");
        assertEquals(0, stages.getFirst().overlaps.get());
        assertTrue(deaths.isEmpty(), deaths::toString);
    }

    @Test
    void aCarrierWhoseGuestsStillRunIsNotLentAwayUntilTheyLeave() throws Exception {
        chain(3, new int[] {1, 1, 1}, IdleMode.BLOCKING);
        run(0, 100, 3);
        loops[0].stop(); // the carrier's own loop leaves first; its guests' loops still run on its thread
        threads.getFirst().wake();
        await("s1's graph let go of it", () -> !threads.getFirst().holders().contains(OWNER));
        // Another graph takes s1 alone, as a guest of a thread of its own.
        Stage otherStage = new Stage();
        ActorThread other = new ActorThread(9, "s9", () -> otherStage);
        other.created().get(10, TimeUnit.SECONDS);
        threads.add(other);
        InputNode<Integer> in = Graph.input();
        ActorRef<Stage> s1 = dev.kiln.graph.internal.GraphInternals.actorRef(1, "s1", Stage.class, "test");
        Waker driver = new Waker();
        GraphLoopTest.Wired second = GraphLoopTest.wire(s1.bind(Stage::inc, in),
                CompileOptions.defaults().maxInflight(4),
                p -> p == ExecutionPlan.DRIVER ? driver : other.waker(), 1);
        GraphLoop secondLoop = new GraphLoop(second.plan().schedules().getFirst(), second.channels(), 1, "second",
                IdleMode.BLOCKING, null, Map.of(), deaths::add, lost -> { }, null);
        assertNull(threads.getFirst().hold("second", true));
        threads.getFirst().attach(secondLoop, other, 0);
        // s1's thread still serves its guests: their mailboxes run on it.
        CompletableFuture<String> call = new CompletableFuture<>();
        assertTrue(threads.get(1).submit(() -> call.complete(stages.get(1).where())));
        assertEquals("kiln-actor-s1", call.get(10, TimeUnit.SECONDS));
        assertTrue(second.input().offer(0, 41));
        loops[1].stop();
        loops[2].stop();
        threads.getFirst().wake();
        await("the second graph ran s1 on s9's thread",
                () -> second.output().poll(second.outputReader(), 0) != Channel.NOT_READY);
        assertEquals(42, second.output().poll(second.outputReader(), 0));
        assertTrue(stages.getFirst().threads.contains("kiln-actor-s9"));
        secondLoop.stop();
        other.wake();
        assertTrue(deaths.isEmpty(), deaths::toString);
    }

    /** A new graph on the actors: new channels and loops, attached as {@code carrierOf} says. */
    private void rewire(int[] carrierOf, IdleMode idle) {
        int n = threads.size();
        List<ActorRef<Stage>> refs = new ArrayList<>();
        for (int i = 1; i <= n; i++) {
            refs.add(dev.kiln.graph.internal.GraphInternals.actorRef(i, "s" + i, Stage.class, "test"));
        }
        InputNode<Integer> in = Graph.input();
        Node<Integer> out = refs.getFirst().bind(Stage::inc, in);
        for (int i = 1; i < n; i++) {
            out = refs.get(i).bind(Stage::inc, out);
        }
        Waker driver = new Waker();
        wired = GraphLoopTest.wire(out, CompileOptions.defaults().maxInflight(8),
                p -> p == ExecutionPlan.DRIVER ? driver : threads.get(carrierOf[p - 1] - 1).waker(),
                java.util.stream.IntStream.rangeClosed(1, n).toArray());
        for (int i = 0; i < n; i++) {
            ActorSchedule s = wired.plan().schedules().get(i);
            ActorThread a = threads.get(s.actor() - 1);
            assertNull(a.hold(OWNER, carrierOf[s.actor() - 1] != s.actor()));
            loops[i] = new GraphLoop(s, wired.channels(), wired.plan().inputArity(), OWNER, idle, null, Map.of(),
                    cause -> {
                        died.add(a);
                        deaths.add(cause);
                    }, lost -> { }, null);
        }
        for (int i = 0; i < n; i++) {
            ActorSchedule s = wired.plan().schedules().get(i);
            threads.get(s.actor() - 1).attach(loops[i], threads.get(carrierOf[s.actor() - 1] - 1), i);
        }
    }

    private static Thread threadOf(ActorThread a) {
        for (Thread t : Thread.getAllStackTraces().keySet()) {
            if (t.getName().equals("kiln-actor-" + a.name())) {
                return t;
            }
        }
        throw new AssertionError("no thread for " + a.name());
    }
}
