package com.example.quickstart;

import dev.kiln.ActorOptions;
import dev.kiln.CompiledGraph;
import dev.kiln.Kiln;
import dev.kiln.KilnOptions;
import dev.kiln.graph.ActorRef;
import dev.kiln.graph.Graph;
import dev.kiln.graph.InputNode;
import dev.kiln.graph.Node;

import java.time.Duration;
import java.util.Arrays;

/**
 * A user's first Kiln program, built against Kiln's installed artifacts (see this project's pom.xml): a
 * two-actor graph in one JVM and a dynamic call, then graphs with one actor in a worker JVM passing a
 * {@code List<String>}, a record, an {@code int[]} and a {@code float[]}. It checks every result against a
 * plain Java computation and exits with status 1 when one differs.
 */
public final class Quickstart {

    private static final Duration TIMEOUT = Duration.ofSeconds(30);
    private static final int EXECUTIONS = 1_000;

    private Quickstart() {
    }

    /** Measures words. */
    public static final class Lengths {
        /** The length of each word of {@code text}, in order. */
        public int[] of(String text) {
            return Arrays.stream(text.split(" ")).mapToInt(String::length).toArray();
        }
    }

    /** Adds numbers up. */
    public static final class Total {
        private long executions;

        /** {@code base} plus the sum of {@code values}; also counts its calls, which the graph must not repeat. */
        public long sum(int[] values, Long base) {
            executions++;
            long total = base;
            for (int v : values) {
                total += v;
            }
            return total;
        }

        /** How many times {@link #sum} ran. */
        public long executions() {
            return executions;
        }
    }

    /** What the worker returns: a record of the user's, registered once with {@link KilnOptions#register}. */
    public record Joined(String text, int words) {
    }

    /** Runs in a worker JVM: joins words and weighs them. */
    public static final class Joiner {
        /** The words joined by {@code separator}, and how many there were. */
        public Joined join(java.util.List<String> words, String separator) {
            return new Joined(String.join(separator, words), words.size());
        }

        /** Each value scaled by {@code factor}: an array out of the worker, as in. */
        public float[] scale(int[] values, Float factor) {
            float[] out = new float[values.length];
            for (int i = 0; i < values.length; i++) {
                out[i] = values[i] * factor;
            }
            return out;
        }
    }

    /** Runs both graphs; exits with status 1 when a result is wrong. */
    public static void main(String[] args) throws Exception {
        // Values of the user's own classes cross JVMs once registered (never through Java serialization).
        try (Kiln kiln = Kiln.local(KilnOptions.defaults().register(Joined.class))) {
            inProcess(kiln);
            withWorker(kiln);
        }
        System.out.println("quickstart: OK");
    }

    /** Two actors on threads of this JVM: a String to an int[] to a long. */
    private static void inProcess(Kiln kiln) throws Exception {
        ActorRef<Lengths> lengths = kiln.actor(Lengths::new);
        ActorRef<Total> total = kiln.actor(Total::new);
        InputNode<String> in = Graph.input();
        Node<int[]> words = lengths.bind(Lengths::of, in);
        Node<Long> sum = total.bind(Total::sum, words, Graph.constant(100L));
        try (CompiledGraph<String, Long> g = kiln.compile(in, sum)) {
            for (int i = 0; i < EXECUTIONS; i++) {
                String text = "kiln runs graph number " + i;
                long expected = 100 + Arrays.stream(text.split(" ")).mapToLong(String::length).sum();
                check(g.execute(text).get(TIMEOUT) == expected, "in process, execution " + i);
            }
        }
        // The dynamic path: one call, on the same actor (its thread runs calls after the graph's executions).
        check(kiln.call(total, Total::executions).get() == EXECUTIONS, "the actor ran once per execution");
        System.out.println("quickstart: " + EXECUTIONS + " executions in one JVM, all exact");
    }

    /**
     * One actor in a worker JVM of its own: a {@code List<String>} in and a registered record out, then an
     * {@code int[]} in and a {@code float[]} out. JDK values cross without registration.
     */
    private static void withWorker(Kiln kiln) {
        ActorRef<Joiner> joiner = kiln.actor(Joiner::new, ActorOptions.process());
        InputNode<java.util.List<String>> words = Graph.input();
        try (CompiledGraph<java.util.List<String>, Joined> g = kiln.compile(words, joiner.bind(Joiner::join, words, Graph.constant("+")))) {
            for (int i = 0; i < EXECUTIONS; i++) {
                java.util.List<String> w = java.util.List.of("a" + i, "b", "c" + (i * 7));
                Joined expected = new Joined("a" + i + "+b+c" + (i * 7), 3);
                check(expected.equals(g.execute(w).get(TIMEOUT)), "worker JVM, List<String>, execution " + i);
            }
        }
        InputNode<int[]> values = Graph.input();
        try (CompiledGraph<int[], float[]> g = kiln.compile(values, joiner.bind(Joiner::scale, values, Graph.constant(0.5f)))) {
            for (int i = 0; i < EXECUTIONS; i++) {
                int[] v = {i, i + 1, -i};
                float[] expected = {i * 0.5f, (i + 1) * 0.5f, -i * 0.5f};
                check(Arrays.equals(expected, g.execute(v).get(TIMEOUT)), "worker JVM, int[], execution " + i);
            }
        }
        System.out.println("quickstart: " + 2 * EXECUTIONS + " executions with an actor in a worker JVM (List<String>"
                + " to a record, int[] to float[]), all exact");
    }

    private static void check(boolean ok, String what) {
        if (!ok) {
            System.err.println("quickstart: wrong result: " + what);
            System.exit(1);
        }
    }
}
