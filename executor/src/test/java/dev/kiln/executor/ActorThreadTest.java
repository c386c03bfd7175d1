package dev.kiln.executor;

import dev.kiln.ActorDiedException;
import dev.kiln.compiler.CompileOptions;
import dev.kiln.compiler.IdleMode;
import dev.kiln.graph.ActorRef;
import dev.kiln.graph.Graph;
import dev.kiln.graph.InputNode;
import dev.kiln.graph.Method1;
import dev.kiln.transport.Channel;
import dev.kiln.transport.Waker;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.locks.LockSupport;
import java.util.function.BooleanSupplier;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

@Timeout(60)
class ActorThreadTest {

    private final List<ActorThread> started = new ArrayList<>();

    @AfterEach
    void stopAll() {
        for (ActorThread a : started) {
            a.stop(5_000);
        }
    }

    private ActorThread start(String name, java.util.function.Supplier<Object> factory) {
        ActorThread a = new ActorThread(started.size() + 1, name, factory);
        started.add(a);
        return a;
    }

    static void await(String what, BooleanSupplier condition) {
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(20);
        while (!condition.getAsBoolean()) {
            if (System.nanoTime() - deadline > 0) {
                fail("timed out waiting for: " + what);
            }
            LockSupport.parkNanos(1_000_000);
        }
    }

    @Test
    void createsTheActorOnItsOwnThread() throws Exception {
        ActorThread a = start("alpha", () -> Thread.currentThread().getName());
        assertEquals("kiln-actor-alpha", a.created().get(10, TimeUnit.SECONDS));
        assertEquals("alpha", a.name());
        assertEquals(1, a.id());
        assertTrue(a.isAlive());
        assertNull(a.death());
        a.rename("beta");
        assertEquals("beta", a.name());
        CompletableFuture<String> name = new CompletableFuture<>();
        assertTrue(a.submit(() -> name.complete(Thread.currentThread().getName())));
        assertEquals("kiln-actor-beta", name.get(10, TimeUnit.SECONDS));
    }

    @Test
    void runsSubmittedCallsInOrderOnTheActorThread() throws Exception {
        ActorThread a = start("orderly", Object::new);
        a.created().get(10, TimeUnit.SECONDS);
        List<Integer> seen = new CopyOnWriteArrayList<>();
        CompletableFuture<Thread> where = new CompletableFuture<>();
        for (int i = 0; i < 1000; i++) {
            int n = i;
            assertTrue(a.submit(() -> seen.add(n)));
        }
        assertTrue(a.submit(() -> where.complete(Thread.currentThread())));
        assertEquals("kiln-actor-orderly", where.get(10, TimeUnit.SECONDS).getName());
        List<Integer> expected = new ArrayList<>();
        for (int i = 0; i < 1000; i++) {
            expected.add(i);
        }
        assertEquals(expected, seen);
    }

    @Test
    void aThrowingFactoryEndsTheThread() {
        IllegalStateException boom = new IllegalStateException("factory");
        ActorThread a = start("broken", () -> {
            throw boom;
        });
        ExecutionException e = assertThrows(ExecutionException.class, () -> a.created().get(10, TimeUnit.SECONDS));
        assertSame(boom, e.getCause());
        assertSame(boom, a.death());
        await("the thread ends", () -> !a.isAlive());
        assertFalse(a.submit(() -> { }));
    }

    @Test
    void holdAndRelease() {
        ActorThread a = start("held", Object::new);
        Object g1 = "g1";
        Object g2 = "g2";
        Object g3 = "g3";
        assertNull(a.hold(g1, false));
        assertNull(a.hold(g2, false), "several graphs may hold an actor");
        assertSame(g1, a.hold(g3, true), "one that needs it alone may not");
        a.release(g3);
        assertTrue(a.holders().contains(g1) && a.holders().contains(g2), "only a holder releases");
        a.release(g1);
        a.release(g2);
        assertNull(a.holders().first());
        assertNull(a.hold(g3, true));
        assertSame(g3, a.hold(g1, false), "an exclusive holder keeps others out");
        a.release(g3);
        assertNull(a.hold(g1, false));
    }

    @Test
    void runsTheLoopsOfTwoGraphsInTurnsAndClosingOneLeavesTheOther() throws Exception {
        ActorThread a = start("shared", GraphLoopTest.Calc::new);
        GraphLoopTest.Calc calc = (GraphLoopTest.Calc) a.created().get(10, TimeUnit.SECONDS);
        ActorRef<GraphLoopTest.Calc> ref = GraphLoopTest.ref(a.id());
        Waker driver = new Waker();
        List<GraphLoopTest.Wired> wired = new ArrayList<>();
        List<GraphLoop> loops = new ArrayList<>();
        List<Throwable> deaths = new CopyOnWriteArrayList<>();
        for (String graph : List.of("g1", "g2")) {
            InputNode<Integer> in = Graph.input();
            GraphLoopTest.Wired w = GraphLoopTest.wire(ref.bind(GraphLoopTest.Calc::inc, in),
                    CompileOptions.defaults().maxInflight(4), p -> p == a.id() ? a.waker() : driver, a.id());
            GraphLoop loop = new GraphLoop(w.plan().schedules().getFirst(), w.channels(), 1, graph, IdleMode.BLOCKING,
                    null, java.util.Map.of(), deaths::add, lost -> { }, null);
            assertNull(a.hold(graph, false));
            a.attach(loop);
            wired.add(w);
            loops.add(loop);
        }
        // Both graphs pipelined at once: each keeps its own order.
        for (long seq = 0; seq < 2_000; seq++) {
            for (int g = 0; g < 2; g++) {
                GraphLoopTest.Wired w = wired.get(g);
                int value = (int) seq * (g + 1);
                while (!w.input().offer(seq, value)) {
                    LockSupport.parkNanos(10_000);
                }
            }
            for (int g = 0; g < 2; g++) {
                GraphLoopTest.Wired w = wired.get(g);
                long s = seq;
                await("execution " + seq + " of g" + (g + 1),
                        () -> w.output().poll(w.outputReader(), s) != Channel.NOT_READY);
                assertEquals((int) seq * (g + 1) + 1, w.output().poll(w.outputReader(), seq));
                w.output().release(w.outputReader(), seq);
            }
        }
        loops.getFirst().stop();
        a.wake();
        await("g1 lets go of the actor", () -> !a.holders().contains("g1"));
        assertTrue(a.holders().contains("g2"));
        GraphLoopTest.Wired w2 = wired.get(1);
        for (long seq = 2_000; seq < 2_100; seq++) {
            assertTrue(w2.input().offer(seq, 7));
            long s = seq;
            await("g2 runs on", () -> w2.output().poll(w2.outputReader(), s) != Channel.NOT_READY);
            assertEquals(8, w2.output().poll(w2.outputReader(), seq));
            w2.output().release(w2.outputReader(), seq);
        }
        assertEquals(4_100, calc.calls);
        assertTrue(deaths.isEmpty(), deaths::toString);
    }

    @Test
    void stopEndsTheThreadAndRefusesLaterCalls() throws Exception {
        ActorThread a = start("stoppable", Object::new);
        a.created().get(10, TimeUnit.SECONDS);
        assertTrue(a.stop(10_000));
        assertFalse(a.isAlive());
        assertNull(a.death(), "a stop is not a death");
        assertFalse(a.submit(() -> { }));
    }

    @Test
    void stopInterruptsAMethodThatDoesNotReturn() throws Exception {
        ActorThread a = start("stuck", Object::new);
        a.created().get(10, TimeUnit.SECONDS);
        CountDownLatch entered = new CountDownLatch(1);
        AtomicBoolean interrupted = new AtomicBoolean();
        assertTrue(a.submit(() -> {
            entered.countDown();
            try {
                new CountDownLatch(1).await(60, TimeUnit.SECONDS);
            } catch (InterruptedException e) {
                interrupted.set(true);
            }
        }));
        assertTrue(entered.await(10, TimeUnit.SECONDS));
        assertTrue(a.stop(100), "ends once interrupted");
        assertTrue(interrupted.get());
    }

    @Test
    void aVirtualMachineErrorInADynamicCallKillsTheActorAndAbandonsQueuedCalls() throws Exception {
        ActorThread a = start("mortal", GraphLoopTest.Calc::new);
        Object instance = a.created().get(10, TimeUnit.SECONDS);
        CountDownLatch release = new CountDownLatch(1);
        CountDownLatch entered = new CountDownLatch(1);
        assertTrue(a.submit(() -> {
            entered.countDown();
            try {
                release.await(60, TimeUnit.SECONDS);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        }));
        assertTrue(entered.await(10, TimeUnit.SECONDS));
        Method1<GraphLoopTest.Calc, Integer, Integer> overflow = GraphLoopTest.Calc::overflow;
        Method1<GraphLoopTest.Calc, Integer, Integer> inc = GraphLoopTest.Calc::inc;
        DynamicCall<Integer> fatal = new DynamicCall<>(overflow, 1, instance, "mortal", 0, new Object[] {1});
        DynamicCall<Integer> queued = new DynamicCall<>(inc, 1, instance, "mortal", 1, new Object[] {1});
        assertTrue(a.submit(fatal));
        assertTrue(a.submit(queued));
        release.countDown();

        ExecutionException e1 = assertThrows(ExecutionException.class, () -> fatal.future().get(10, TimeUnit.SECONDS));
        assertInstanceOf(StackOverflowError.class, assertInstanceOf(ActorDiedException.class, e1.getCause()).getCause());
        ExecutionException e2 = assertThrows(ExecutionException.class, () -> queued.future().get(10, TimeUnit.SECONDS));
        assertInstanceOf(StackOverflowError.class, assertInstanceOf(ActorDiedException.class, e2.getCause()).getCause());
        await("the thread ends", () -> !a.isAlive());
        assertInstanceOf(StackOverflowError.class, a.death());
        assertFalse(a.submit(() -> { }));
    }

    @Test
    void runsAnAttachedLoopUntilItIsStopped() throws Exception {
        ActorThread a = start("looper", GraphLoopTest.Calc::new);
        a.created().get(10, TimeUnit.SECONDS);
        ActorRef<GraphLoopTest.Calc> ref = GraphLoopTest.ref(a.id());
        InputNode<Integer> in = Graph.input();
        Waker driver = new Waker();
        GraphLoopTest.Wired w = GraphLoopTest.wire(ref.bind(GraphLoopTest.Calc::inc, in),
                CompileOptions.defaults().maxInflight(4), p -> p == a.id() ? a.waker() : driver, a.id());
        List<Throwable> deaths = new CopyOnWriteArrayList<>();
        Object graph = "graph";
        GraphLoop loop = new GraphLoop(w.plan().schedules().getFirst(), w.channels(), 1, graph, IdleMode.BLOCKING,
                null, java.util.Map.of(), deaths::add, lost -> { }, null);
        assertNull(a.hold(graph, false));
        a.attach(loop);
        for (long seq = 0; seq < 200; seq++) {
            while (!w.input().offer(seq, (int) seq)) {
                LockSupport.parkNanos(10_000);
            }
            long s = seq;
            await("execution " + seq, () -> w.output().poll(w.outputReader(), s) != Channel.NOT_READY);
            assertEquals((int) seq + 1, w.output().poll(w.outputReader(), seq));
            w.output().release(w.outputReader(), seq);
        }
        loop.stop();
        a.wake();
        await("the actor leaves the stopped loop", () -> a.holders().first() == null);
        assertTrue(deaths.isEmpty());
        CompletableFuture<Boolean> after = new CompletableFuture<>();
        assertTrue(a.submit(() -> after.complete(true)), "the actor lives on");
        assertTrue(after.get(10, TimeUnit.SECONDS));
    }

    @Test
    void stoppingTheThreadReportsItsAttachedLoop() throws Exception {
        ActorThread a = start("ending", GraphLoopTest.Calc::new);
        a.created().get(10, TimeUnit.SECONDS);
        ActorRef<GraphLoopTest.Calc> ref = GraphLoopTest.ref(a.id());
        InputNode<Integer> in = Graph.input();
        GraphLoopTest.Wired w = GraphLoopTest.wire(ref.bind(GraphLoopTest.Calc::inc, in), CompileOptions.defaults(),
                a.id());
        List<Throwable> deaths = new CopyOnWriteArrayList<>();
        GraphLoop loop = new GraphLoop(w.plan().schedules().getFirst(), w.channels(), 1, "graph", IdleMode.BACKOFF,
                null, java.util.Map.of(), deaths::add, lost -> { }, null);
        assertNull(a.hold("graph", false));
        a.attach(loop);
        assertTrue(a.stop(10_000));
        assertEquals(1, deaths.size());
        assertInstanceOf(IllegalStateException.class, deaths.getFirst());
        assertTrue(loop.isStopped());
    }

    @Test
    void aVirtualMachineErrorInTheLoopKillsTheActor() throws Exception {
        ActorThread a = start("overflowing", GraphLoopTest.Calc::new);
        a.created().get(10, TimeUnit.SECONDS);
        ActorRef<GraphLoopTest.Calc> ref = GraphLoopTest.ref(a.id());
        InputNode<Integer> in = Graph.input();
        GraphLoopTest.Wired w = GraphLoopTest.wire(ref.bind(GraphLoopTest.Calc::overflow, in),
                CompileOptions.defaults(), a.id());
        List<Throwable> deaths = new CopyOnWriteArrayList<>();
        GraphLoop loop = new GraphLoop(w.plan().schedules().getFirst(), w.channels(), 1, "graph", IdleMode.BACKOFF,
                null, java.util.Map.of(), deaths::add, lost -> { }, null);
        assertNull(a.hold("graph", false));
        a.attach(loop);
        assertTrue(w.input().offer(0, 9));
        await("the actor dies", () -> !a.isAlive());
        assertEquals("deep 9", assertInstanceOf(StackOverflowError.class, a.death()).getMessage());
        assertEquals(List.of(a.death()), deaths);
        assertFalse(a.submit(() -> { }));
    }
}
