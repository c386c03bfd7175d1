package dev.kiln;

import dev.kiln.compiler.CompileOptions;
import dev.kiln.compiler.IdleMode;
import dev.kiln.graph.ActorRef;
import dev.kiln.graph.Graph;
import dev.kiln.graph.InputNode;
import dev.kiln.graph.Node;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;
import org.junit.jupiter.params.provider.ValueSource;

import java.util.ArrayDeque;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertEquals;

/**
 * Hammers the batching actor loops through the whole engine: many executions in flight, so loops run batches, publish
 * and release once per batch, and sleep and wake on their peers ({@code maxInflight} 5: channels of 8 slots of which
 * 5 are used). Every result is checked exactly and in order, so a value published out of order or overwritten before
 * its release fails the run, and a publication or release lost from a batch hangs it (the futures' timeouts fail it).
 * The wake-up protocol itself, with parks that have no timeout, is hammered in {@code InProcessChannelTest} and checked
 * under jcstress.
 */
@Timeout(value = 5, unit = TimeUnit.MINUTES)
class BatchingLoopsTest {

    private static final int EXECUTIONS = 30_000;

    /** Adds a constant. */
    static final class Add {
        private final int k;

        Add(int k) {
            this.k = k;
        }

        int add(int x) {
            return x + k;
        }

        int sum(int a, int b, int c) {
            return a + b + c;
        }
    }

    @ParameterizedTest
    @EnumSource(value = IdleMode.class, names = {"BACKOFF", "BLOCKING"})
    void chainOfFourGivesExactResultsInOrder(IdleMode idle) throws Exception {
        try (Kiln kiln = Kiln.local()) {
            InputNode<Integer> in = Graph.input();
            Node<Integer> node = in;
            for (int i = 1; i <= 4; i++) {
                int k = i;
                ActorRef<Add> a = kiln.actor(() -> new Add(k));
                node = a.bind(Add::add, node);
            }
            try (CompiledGraph<Integer, Integer> g = kiln.compile(in, node,
                    CompileOptions.defaults().maxInflight(5).idle(idle))) {
                run(g, x -> x + 10);
            }
        }
    }

    @ParameterizedTest
    @EnumSource(value = IdleMode.class, names = {"BACKOFF", "BLOCKING"})
    void scatterGatherGivesExactResultsInOrder(IdleMode idle) throws Exception {
        try (Kiln kiln = Kiln.local()) {
            InputNode<Integer> in = Graph.input();
            ActorRef<Add> a = kiln.actor(() -> new Add(1));
            ActorRef<Add> b = kiln.actor(() -> new Add(2));
            ActorRef<Add> c = kiln.actor(() -> new Add(3));
            ActorRef<Add> join = kiln.actor(() -> new Add(0));
            Node<Integer> out = join.bind(Add::sum, a.bind(Add::add, in), b.bind(Add::add, in), c.bind(Add::add, in));
            try (CompiledGraph<Integer, Integer> g = kiln.compile(in, out,
                    CompileOptions.defaults().maxInflight(5).idle(idle))) {
                run(g, x -> 3 * x + 6);
            }
            // The actors stay usable for dynamic calls between and after executions.
            assertEquals(8, kiln.call(c, Add::add, 5).get(10, TimeUnit.SECONDS));
        }
    }

    /**
     * A chain of 200 calls that visits two actors in turn: each loop writes, then waits on the other's value, 100 times
     * per execution, so it publishes at every wait (only what it wrote since the last one) and, once per execution,
     * everything it wrote; with both actors on one thread, a publication left out hangs the run.
     */
    @ParameterizedTest
    @ValueSource(ints = {1, 2, CompileOptions.THREAD_PER_ACTOR})
    void chainThatVisitsTwoActorsInTurnGivesExactResultsInOrder(int threads) throws Exception {
        try (Kiln kiln = Kiln.local()) {
            ActorRef<Add> a = kiln.actor(() -> new Add(1));
            ActorRef<Add> b = kiln.actor(() -> new Add(2));
            InputNode<Integer> in = Graph.input();
            Node<Integer> node = in;
            for (int i = 0; i < 200; i++) {
                node = (i % 2 == 0 ? a : b).bind(Add::add, node);
            }
            try (CompiledGraph<Integer, Integer> g = kiln.compile(in, node,
                    CompileOptions.defaults().maxInflight(5).actorThreads(threads))) {
                run(g, x -> x + 300, EXECUTIONS / 10);
            }
        }
    }

    /** Keeps the graph full (submits while fewer than maxInflight are pending) and checks every result in order. */
    private static void run(CompiledGraph<Integer, Integer> g, java.util.function.IntUnaryOperator expected)
            throws Exception {
        run(g, expected, EXECUTIONS);
    }

    private static void run(CompiledGraph<Integer, Integer> g, java.util.function.IntUnaryOperator expected,
                            int executions) throws Exception {
        ArrayDeque<GraphFuture<Integer>> pending = new ArrayDeque<>();
        int next = 0;
        for (int i = 0; i < executions; i++) {
            if (pending.size() == 5) {
                assertEquals(expected.applyAsInt(next), pending.poll().get(30, TimeUnit.SECONDS), "execution " + next);
                next++;
            }
            pending.add(g.execute(i));
        }
        while (!pending.isEmpty()) {
            assertEquals(expected.applyAsInt(next), pending.poll().get(30, TimeUnit.SECONDS), "execution " + next);
            next++;
        }
        assertEquals(executions, next);
    }
}
