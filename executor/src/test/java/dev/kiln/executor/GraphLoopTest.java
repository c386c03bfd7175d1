package dev.kiln.executor;

import dev.kiln.graph.internal.GraphInternals;
import dev.kiln.compiler.CompileOptions;
import dev.kiln.compiler.ExecutionPlan;
import dev.kiln.compiler.ExecutionPlan.ChannelSpec;
import dev.kiln.compiler.GraphCompiler;
import dev.kiln.compiler.IdleMode;
import dev.kiln.compiler.Topology;
import dev.kiln.compiler.Topology.ActorPlacement;
import dev.kiln.graph.ActorRef;
import dev.kiln.graph.Graph;
import dev.kiln.graph.InputNode;
import dev.kiln.graph.InputNode3;
import dev.kiln.graph.Node;
import dev.kiln.graph.Tuple3;
import dev.kiln.transport.Channel;
import dev.kiln.transport.InProcessChannel;
import dev.kiln.transport.Waker;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.function.IntFunction;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Drives one actor's {@link GraphLoop} from the test thread, which plays both the driver
 * and the actor's host: every step is deterministic.
 */
@Timeout(60)
class GraphLoopTest {

    /** A single-threaded actor that counts its calls. */
    static final class Calc {
        int calls;

        int inc(int x) {
            calls++;
            return x + 1;
        }

        int mix(int a, int b, int c) {
            calls++;
            return a * 100 + b * 10 + c;
        }

        String join(String a, int b) {
            calls++;
            return a + b;
        }

        /** Takes at least 1 ms: far more than a batch's time bound. */
        int slowInc(int x) {
            calls++;
            long until = System.nanoTime() + 1_000_000;
            while (System.nanoTime() - until < 0) {
                Thread.onSpinWait();
            }
            return x + 1;
        }

        /** Called with its argument at the start of {@link #briefInc}, or null. */
        java.util.function.IntConsumer onBriefInc;

        /** Takes at least 10 us: more than a batch's time bound, far less than {@link GraphLoop#HOLD_NS}. */
        int briefInc(int x) {
            calls++;
            if (onBriefInc != null) {
                onBriefInc.accept(x);
            }
            long until = System.nanoTime() + 10_000;
            while (System.nanoTime() - until < 0) {
                Thread.onSpinWait();
            }
            return x + 1;
        }

        int failOdd(int x) {
            calls++;
            if (x % 2 != 0) {
                throw new IllegalArgumentException("odd " + x);
            }
            return x;
        }

        int overflow(int x) {
            throw new StackOverflowError("deep " + x);
        }
    }

    /** A plan for actors hosted in the driver's JVM, with its channels. */
    record Wired(ExecutionPlan plan, Channel[] channels) {
        Channel input() {
            return channels[ExecutionPlan.INPUT_CHANNEL];
        }

        Channel output() {
            return channels[plan.outputs().getFirst().channel()];
        }

        int outputReader() {
            return plan.outputs().getFirst().reader();
        }
    }

    static ActorRef<Calc> ref(int id) {
        return GraphInternals.actorRef(id, "calc" + id, Calc.class, "test");
    }

    static Wired wire(Node<?> output, CompileOptions options, int... actorIds) {
        return wire(output, options, participant -> new Waker(), actorIds);
    }

    /** Wires the plan's channels; {@code wakers} gives each participant's waker (the driver is -1). */
    static Wired wire(Node<?> output, CompileOptions options, IntFunction<Waker> wakers, int... actorIds) {
        Map<Integer, ActorPlacement> placements = new HashMap<>();
        for (int id : actorIds) {
            placements.put(id, ActorPlacement.IN_DRIVER);
        }
        ExecutionPlan plan = GraphCompiler.compile(output, new Topology(ActorPlacement.IN_DRIVER, placements), options);
        Channel[] channels = new Channel[plan.channels().size()];
        for (ChannelSpec spec : plan.channels()) {
            Waker[] readers = new Waker[spec.readers().size()];
            for (int r = 0; r < readers.length; r++) {
                readers[r] = wakers.apply(spec.readers().get(r));
            }
            channels[spec.id()] = new InProcessChannel(spec, wakers.apply(spec.writer()), readers);
        }
        return new Wired(plan, channels);
    }

    static GraphLoop loop(Wired w, List<Throwable> deaths) {
        return new GraphLoop(w.plan().schedules().getFirst(), w.channels(), w.plan().inputArity(), "owner",
                IdleMode.BACKOFF, null, java.util.Map.of(), deaths::add, lost -> { }, null);
    }

    private static Object take(Wired w, long seq) {
        Object v = w.output().poll(w.outputReader(), seq);
        if (v != Channel.NOT_READY) {
            w.output().release(w.outputReader(), seq);
        }
        return v;
    }

    /** An input channel from another host whose writer is gone for good. */
    static final class LostPeerChannel implements Channel {
        private final Channel inner;
        int awaits;

        LostPeerChannel(Channel inner) {
            this.inner = inner;
        }

        @Override
        public ChannelSpec spec() {
            return inner.spec();
        }

        @Override
        public boolean offer(long sequence, Object value) {
            return inner.offer(sequence, value);
        }

        @Override
        public boolean isFree(long sequence) {
            return inner.isFree(sequence);
        }

        @Override
        public Object poll(int reader, long sequence) {
            return inner.poll(reader, sequence);
        }

        @Override
        public void release(int reader, long sequence) {
            inner.release(reader, sequence);
        }

        @Override
        public boolean crossesProcesses() {
            return true;
        }

        @Override
        public boolean awaitPublished(int reader, long sequence, long timeoutNanos) {
            awaits++;
            return false;
        }

        @Override
        public String peerLoss(int side) {
            return side == 0 && awaits > 1 ? "c0 lost driver: its image closed" : null;
        }

        @Override
        public void close() {
            inner.close();
        }
    }

    @Test
    void aLoopWhoseChannelLostItsPeerStopsAndReportsItOnce() {
        ActorRef<Calc> a = ref(1);
        InputNode<Integer> in = Graph.input();
        Wired w = wire(a.bind(Calc::inc, in), CompileOptions.defaults().maxInflight(4), 1);
        LostPeerChannel input = new LostPeerChannel(w.input());
        w.channels()[ExecutionPlan.INPUT_CHANNEL] = input;
        List<String> lost = new ArrayList<>();
        GraphLoop loop = new GraphLoop(w.plan().schedules().getFirst(), w.channels(), w.plan().inputArity(), "g",
                IdleMode.BACKOFF, null, java.util.Map.of(), cause -> { }, lost::add, null);
        loop.bind(new Calc());
        assertEquals(0, loop.doWork());
        assertTrue(loop.sleep(1_000), "a channel shared with another process: the loop sleeps in it");
        assertEquals(List.of(), lost, "a wait that ends unfinished with the peer still there is just a wait");
        assertFalse(loop.isStopped());
        assertTrue(loop.sleep(1_000));
        assertEquals(List.of("calc1 in g: c0 lost driver: its image closed"), lost);
        assertTrue(loop.isStopped());
        loop.sleep(1_000);
        assertEquals(1, lost.size(), "reported once");
    }

    @Test
    void runsEveryReadyExecutionInOneDutyCycleAndWaitsForInput() {
        ActorRef<Calc> a = ref(1);
        InputNode<Integer> in = Graph.input();
        Wired w = wire(a.bind(Calc::inc, in), CompileOptions.defaults().maxInflight(4), 1);
        GraphLoop loop = loop(w, new ArrayList<>());
        Calc calc = new Calc();
        loop.bind(calc);

        assertEquals(0, loop.doWork(), "no input yet");
        assertTrue(w.input().offer(0, 5));
        assertTrue(w.input().offer(1, 6));
        assertEquals(6, loop.doWork(), "READ, COMPUTE, WRITE of executions 0 and 1 in one batch");
        assertEquals(2, loop.executionsDone());
        assertEquals(6, take(w, 0));
        assertEquals(7, take(w, 1));
        assertEquals(0, loop.doWork());
        assertTrue(w.input().offer(2, 7));
        assertEquals(3, loop.doWork());
        assertEquals(8, take(w, 2));
        assertEquals(3, calc.calls);
    }

    @Test
    void aBatchIsBoundedAndReleasesItsInputsOnce() {
        ActorRef<Calc> a = ref(1);
        InputNode<Integer> in = Graph.input();
        int n = GraphLoop.MAX_BATCH + 6;
        Wired w = wire(a.bind(Calc::inc, in), CompileOptions.defaults().maxInflight(n), 1);
        GraphLoop loop = loop(w, new ArrayList<>());
        loop.bind(new Calc());
        for (int i = 0; i < n; i++) {
            assertTrue(w.input().offer(i, i));
        }
        assertFalse(w.input().offer(n, n), "every input slot is taken");
        assertEquals(3 * GraphLoop.MAX_BATCH, loop.doWork(), "one full batch, then back to the host");
        assertTrue(w.input().isFree(n + GraphLoop.MAX_BATCH - 1), "the batch's input slots were released");
        assertFalse(w.input().isFree(n + GraphLoop.MAX_BATCH), "the rest are still held");
        assertEquals(3 * 6, loop.doWork(), "the rest, then no input: the loop flushes before it would wait");
        assertEquals(0, loop.doWork());
        for (int i = 0; i < n; i++) {
            assertEquals(i + 1, take(w, i));
        }
    }

    @Test
    void slowExecutionsArePublishedOneByOne() {
        ActorRef<Calc> a = ref(1);
        InputNode<Integer> in = Graph.input();
        int n = 2 * GraphLoop.TIMED_BATCH_EVERY;
        Wired w = wire(a.bind(Calc::slowInc, in), CompileOptions.defaults().maxInflight(n), 1);
        GraphLoop loop = loop(w, new ArrayList<>());
        loop.bind(new Calc());
        // One execution per call until a batch is timed: its 1 ms execution bounds the batches that follow to one.
        for (int i = 0; i < GraphLoop.TIMED_BATCH_EVERY; i++) {
            assertTrue(w.input().offer(i, i));
            assertEquals(3, loop.doWork());
            assertEquals(i + 1, take(w, i));
        }
        for (int i = GraphLoop.TIMED_BATCH_EVERY; i < n; i++) {
            assertTrue(w.input().offer(i, i));
        }
        for (int i = GraphLoop.TIMED_BATCH_EVERY; i < n; i++) {
            assertEquals(3, loop.doWork(), "one slow execution, published, then back to the host");
            assertEquals(i + 1, take(w, i));
            assertTrue(w.input().isFree(i + n), "its input slot was released");
        }
        assertEquals(0, loop.doWork());
    }

    @Test
    void anOfferedLoopGoesOnWithItsReadyExecutionsAndPublishesEach() {
        ActorRef<Calc> a = ref(1);
        InputNode<Integer> in = Graph.input();
        int n = GraphLoop.TIMED_BATCH_EVERY + 3;
        Wired w = wire(a.bind(Calc::briefInc, in), CompileOptions.defaults().maxInflight(n), 1);
        GraphLoop loop = loop(w, new ArrayList<>());
        Calc calc = new Calc();
        loop.bind(calc);
        for (int i = 0; i < GraphLoop.TIMED_BATCH_EVERY; i++) { // until a timed batch bounds the batches to one
            assertTrue(w.input().offer(i, i));
            assertEquals(3, loop.doWork());
            assertEquals(i + 1, take(w, i));
        }
        loop.shared = new SharedLoops(new Waker[] {new Waker()});
        loop.offer(true); // as the thread that runs it does once it is heavy: other threads may take turns at it
        List<Integer> notYetPublished = new ArrayList<>();
        calc.onBriefInc = x -> {
            if (x > GraphLoop.TIMED_BATCH_EVERY && w.output().poll(w.outputReader(), x - 1) == Channel.NOT_READY) {
                notYetPublished.add(x - 1);
            }
        };
        for (int i = GraphLoop.TIMED_BATCH_EVERY; i < n; i++) {
            assertTrue(w.input().offer(i, i));
        }
        assertEquals(9, loop.doWork(), "three ready executions of 10 us in one turn, not one");
        assertEquals(List.of(), notYetPublished, "each result is published before the next execution starts");
        for (int i = GraphLoop.TIMED_BATCH_EVERY; i < n; i++) {
            assertEquals(i + 1, take(w, i));
        }
        loop.offer(false);
        assertEquals(0, loop.doWork());
    }

    @Test
    void theBatchBoundFollowsTheTimeOfAnExecution() {
        assertEquals(GraphLoop.MAX_BATCH, GraphLoop.nextBatchLimit(GraphLoop.MAX_BATCH, 10));
        assertEquals(1, GraphLoop.nextBatchLimit(GraphLoop.MAX_BATCH, 50_000), "slow: down at once");
        assertEquals(4, GraphLoop.nextBatchLimit(GraphLoop.MAX_BATCH, GraphLoop.BATCH_NS / 4));
        assertEquals(2, GraphLoop.nextBatchLimit(1, 10), "fast again: up by doubling");
        assertEquals(GraphLoop.MAX_BATCH, GraphLoop.nextBatchLimit(GraphLoop.MAX_BATCH / 2, 0));
    }

    @Test
    void waitsForTheReaderToReleaseASlot() {
        ActorRef<Calc> a = ref(1);
        InputNode<Integer> in = Graph.input();
        Wired w = wire(a.bind(Calc::inc, in), CompileOptions.defaults().maxInflight(2), 1);
        GraphLoop loop = loop(w, new ArrayList<>());
        loop.bind(new Calc());

        assertTrue(w.input().offer(0, 10));
        assertTrue(w.input().offer(1, 11));
        assertFalse(w.input().offer(2, 12), "two slots, none released");
        assertEquals(6, loop.doWork(), "both executions in one batch");
        assertTrue(w.input().offer(2, 12), "the loop released its input slots");
        assertEquals(2, loop.doWork(), "READ and COMPUTE; the WRITE waits for output slot 0");
        assertEquals(0, loop.doWork());
        assertEquals(11, take(w, 0));
        assertEquals(1, loop.doWork(), "the WRITE goes through once the slot is released");
        assertEquals(12, take(w, 1));
        assertEquals(13, take(w, 2));
    }

    @Test
    void aUserExceptionBecomesATaskErrorAndDownstreamCallsAreSkipped() {
        ActorRef<Calc> a = ref(1);
        InputNode<Integer> in = Graph.input();
        Node<Integer> checked = a.bind(Calc::failOdd, in);
        Node<Integer> next = a.bind(Calc::inc, checked); // same actor: a local edge
        Wired w = wire(next, CompileOptions.defaults().maxInflight(4), 1);
        GraphLoop loop = loop(w, new ArrayList<>());
        Calc calc = new Calc();
        loop.bind(calc);

        for (int i = 0; i < 4; i++) {
            assertTrue(w.input().offer(i, i));
            assertTrue(loop.doWork() > 0);
            Object v = take(w, i);
            if (i % 2 == 0) {
                assertEquals(i + 1, v);
            } else {
                TaskError error = assertInstanceOf(TaskError.class, v);
                assertEquals("calc1", error.actor());
                assertTrue(error.method().endsWith("Calc.failOdd"), error.method());
                assertEquals(i, error.sequence());
                assertEquals("odd " + i, assertInstanceOf(IllegalArgumentException.class, error.cause()).getMessage());
            }
        }
        assertEquals(4 + 2, calc.calls, "inc ran for the two even inputs only");
    }

    @Test
    void passesInputArgumentsAndConstants() {
        ActorRef<Calc> a = ref(1);
        InputNode3<Integer, Integer, String> in = Graph.input3();
        Node<Integer> m = a.bind(Calc::mix, in.second(), Graph.constant(7), in.first());
        Node<String> j = a.bind(Calc::join, in.third(), m);
        Wired w = wire(j, CompileOptions.defaults(), 1);
        assertEquals(3, w.plan().inputArity());
        GraphLoop loop = loop(w, new ArrayList<>());
        loop.bind(new Calc());

        assertTrue(w.input().offer(0, GraphCompiler.inputRecord(w.plan(), new Tuple3<>(1, 2, "m="))));
        assertTrue(loop.doWork() > 0);
        assertEquals("m=" + (2 * 100 + 70 + 1), take(w, 0));
    }

    @Test
    void aVirtualMachineErrorLeavesTheLoop() {
        ActorRef<Calc> a = ref(1);
        InputNode<Integer> in = Graph.input();
        Wired w = wire(a.bind(Calc::overflow, in), CompileOptions.defaults(), 1);
        List<Throwable> deaths = new ArrayList<>();
        GraphLoop loop = loop(w, deaths);
        loop.bind(new Calc());
        assertTrue(w.input().offer(0, 3));
        StackOverflowError e = assertThrows(StackOverflowError.class, loop::doWork);
        assertEquals("deep 3", e.getMessage());
        assertTrue(deaths.isEmpty(), "the host reports the death, not doWork");
        loop.died(e);
        assertEquals(List.of(e), deaths);
        assertTrue(loop.isStopped());
    }

    @Test
    void stopAndAccessors() {
        ActorRef<Calc> a = ref(1);
        InputNode<Integer> in = Graph.input();
        Wired w = wire(a.bind(Calc::inc, in), CompileOptions.defaults(), 1);
        GraphLoop loop = new GraphLoop(w.plan().schedules().getFirst(), w.channels(), 1, "graph-x", IdleMode.BLOCKING,
                null, java.util.Map.of(), t -> { }, lost -> { }, null);
        assertSame("graph-x", loop.owner());
        assertEquals(IdleMode.BLOCKING, loop.idle());
        assertFalse(loop.isStopped());
        loop.stop();
        assertTrue(loop.isStopped());
        assertTrue(loop.toString().contains("graph-x"), loop.toString());
    }
}
