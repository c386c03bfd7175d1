package dev.kiln;

import dev.kiln.compiler.CompileOptions;
import dev.kiln.graph.ActorRef;
import dev.kiln.graph.Graph;
import dev.kiln.graph.InputNode;
import dev.kiln.graph.InputNode2;
import dev.kiln.graph.InputNode3;
import dev.kiln.graph.Node;
import dev.kiln.graph.Tuple2;
import dev.kiln.graph.Tuple3;
import net.jqwik.api.Arbitraries;
import net.jqwik.api.Arbitrary;
import net.jqwik.api.Combinators;
import net.jqwik.api.ForAll;
import net.jqwik.api.Property;
import net.jqwik.api.Provide;
import net.jqwik.api.Tuple;
import net.jqwik.api.constraints.IntRange;
import net.jqwik.api.constraints.Size;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.TreeSet;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLongArray;

import static org.junit.jupiter.api.Assertions.assertEquals;

/**
 * Random DAGs of up to 30 calls over up to 6 actors give exactly the results of a plain
 * sequential interpreter of the same graph, and run every call once per execution.
 *
 * <p>jqwik ignores JUnit's {@code @Timeout}: every wait here has its own timeout instead.
 */
class GraphPropertyTest {

    private static final int MODULUS = 1_000_003;

    /** Pure integer functions of the arguments and the actor's salt; counts calls per actor. */
    static final class Pure {
        private final int index;
        private final AtomicLongArray calls;

        Pure(int index, AtomicLongArray calls) {
            this.index = index;
            this.calls = calls;
        }

        int f1(int a) {
            calls.incrementAndGet(index);
            return eval(index, 1, a, 0, 0);
        }

        int f2(int a, int b) {
            calls.incrementAndGet(index);
            return eval(index, 2, a, b, 0);
        }

        int f3(int a, int b, int c) {
            calls.incrementAndGet(index);
            return eval(index, 3, a, b, c);
        }

        static int eval(int actor, int arity, int a, int b, int c) {
            int salt = actor * 1009 + 1;
            return switch (arity) {
                case 1 -> Math.floorMod(a * 31 + salt, MODULUS);
                case 2 -> Math.floorMod(a * 31 + (b ^ salt) * 17, MODULUS);
                default -> Math.floorMod((a * 31 + b) ^ (c * 7 + salt), MODULUS);
            };
        }
    }

    /** How one argument is chosen: 0 an earlier node, 1 an input argument, 2 a constant. */
    record ArgGen(int kind, int pick, int constant) {
    }

    /** One call: an actor (mod the actor count), a method arity and up to three arguments. */
    record NodeGen(int actor, int arity, List<ArgGen> args) {
    }

    /** A whole generated graph, before resolution. */
    record GraphGen(int actors, int inputArity, int maxInflight, List<NodeGen> nodes, List<Boolean> extraOutputs) {
    }

    /** Where a resolved argument comes from. */
    sealed interface Src permits FromNode, FromInput, Const {
    }

    record FromNode(int node) implements Src {
    }

    record FromInput(int position) implements Src {
    }

    record Const(int value) implements Src {
    }

    /** A resolved call. */
    record Call(int actor, int arity, List<Src> args) {
    }

    @Provide
    Arbitrary<GraphGen> graphs() {
        Arbitrary<Integer> kind = Arbitraries.frequency(Tuple.of(5, 0), Tuple.of(3, 1), Tuple.of(1, 2));
        Arbitrary<ArgGen> arg = Combinators.combine(kind, Arbitraries.integers().between(0, 1000),
                Arbitraries.integers().between(-100, 100)).as(ArgGen::new);
        Arbitrary<NodeGen> node = Combinators.combine(Arbitraries.integers().between(0, 5),
                Arbitraries.integers().between(1, 3), arg.list().ofSize(3)).as(NodeGen::new);
        return Combinators.combine(
                Arbitraries.integers().between(1, 6),
                Arbitraries.integers().between(1, 3),
                Arbitraries.integers().between(1, 5),
                node.list().ofMinSize(1).ofMaxSize(30),
                Arbitraries.of(true, false).list().ofSize(30)).as(GraphGen::new);
    }

    /** The graph as one of any input type: {@code execute} gets the one argument, or the tuple, it was built for. */
    @SuppressWarnings("unchecked")
    private static CompiledGraph<Object, ?> erased(CompiledGraph<?, ?> graph) {
        return (CompiledGraph<Object, ?>) graph;
    }

    @Property(tries = 200)
    void compiledGraphsMatchASequentialInterpreter(
            @ForAll("graphs") GraphGen gen,
            @ForAll @Size(min = 1, max = 8) List<@Size(3) List<@IntRange(min = -1000, max = 1000) Integer>> inputs,
            @ForAll boolean readInReverse) throws Exception {
        List<Call> calls = resolve(gen);
        // input positions actually used, renumbered densely: execute(...) takes exactly those
        TreeSet<Integer> used = new TreeSet<>();
        for (Call c : calls) {
            for (Src s : c.args()) {
                if (s instanceof FromInput(int position)) {
                    used.add(position);
                }
            }
        }
        List<Integer> positions = new ArrayList<>(used);
        int arity = positions.size();

        boolean[] consumed = new boolean[calls.size()];
        for (Call c : calls) {
            for (Src s : c.args()) {
                if (s instanceof FromNode(int node)) {
                    consumed[node] = true;
                }
            }
        }
        List<Integer> outputs = new ArrayList<>();
        for (int i = 0; i < calls.size(); i++) {
            if (!consumed[i] || gen.extraOutputs().get(i)) {
                outputs.add(i);
            }
        }

        AtomicLongArray counts = new AtomicLongArray(gen.actors());
        try (Kiln kiln = Kiln.local()) {
            List<ActorRef<Pure>> actors = new ArrayList<>();
            for (int k = 0; k < gen.actors(); k++) {
                int index = k;
                actors.add(kiln.actor(() -> new Pure(index, counts)));
            }
            // execute(x) for one argument, execute(new Tuple2<>(...)) or Tuple3 for more
            InputNode<?> in;
            List<Node<Integer>> inputNodes;
            switch (arity) {
                case 0, 1 -> {
                    InputNode<Integer> one = Graph.input();
                    in = one;
                    inputNodes = List.of(one);
                }
                case 2 -> {
                    InputNode2<Integer, Integer> two = Graph.input2();
                    in = two;
                    inputNodes = List.of(two.first(), two.second());
                }
                default -> {
                    InputNode3<Integer, Integer, Integer> three = Graph.input3();
                    in = three;
                    inputNodes = List.of(three.first(), three.second(), three.third());
                }
            }
            List<Node<Integer>> nodes = new ArrayList<>();
            for (Call c : calls) {
                List<Node<Integer>> a = new ArrayList<>();
                for (int k = 0; k < c.arity(); k++) {
                    a.add(switch (c.args().get(k)) {
                        case FromNode(int node) -> nodes.get(node);
                        case FromInput(int position) -> inputNodes.get(positions.indexOf(position));
                        case Const(int value) -> Graph.constant(value);
                    });
                }
                ActorRef<Pure> ref = actors.get(c.actor());
                nodes.add(switch (c.arity()) {
                    case 1 -> ref.bind(Pure::f1, a.get(0));
                    case 2 -> ref.bind(Pure::f2, a.get(0), a.get(1));
                    default -> ref.bind(Pure::f3, a.get(0), a.get(1), a.get(2));
                });
            }
            boolean single = outputs.size() == 1;
            Node<?> root = single ? nodes.get(outputs.getFirst())
                    : Graph.outputs(outputs.stream().map(nodes::get).toList());
            try (CompiledGraph<Object, ?> g = erased(kiln.compile(in, root,
                    CompileOptions.defaults().maxInflight(gen.maxInflight())))) {
                assertEquals(arity, g.plan().inputArity());
                List<GraphFuture<?>> futures = new ArrayList<>();
                for (List<Integer> values : inputs) {
                    Object[] args = positions.stream().map(values::get).toArray();
                    futures.add(switch (arity) {
                        case 0 -> g.execute(null);
                        case 1 -> g.execute(args[0]);
                        case 2 -> g.execute(new Tuple2<>(args[0], args[1]));
                        default -> g.execute(new Tuple3<>(args[0], args[1], args[2]));
                    });
                }
                for (int n = 0; n < futures.size(); n++) {
                    int e = readInReverse ? futures.size() - 1 - n : n;
                    List<Integer> expected = interpret(calls, inputs.get(e), outputs);
                    Object actual = futures.get(e).get(10, TimeUnit.SECONDS);
                    assertEquals(single ? expected.getFirst() : expected, actual, "execution " + e + " of " + calls);
                }
            }
        }
        long[] perActor = new long[gen.actors()];
        for (Call c : calls) {
            perActor[c.actor()] += inputs.size();
        }
        for (int k = 0; k < perActor.length; k++) {
            assertEquals(perActor[k], counts.get(k), "calls on actor " + k + " (each call once per execution)");
        }
    }

    private static List<Call> resolve(GraphGen gen) {
        List<Call> calls = new ArrayList<>();
        for (int i = 0; i < gen.nodes().size(); i++) {
            NodeGen n = gen.nodes().get(i);
            List<Src> args = new ArrayList<>();
            for (int k = 0; k < n.arity(); k++) {
                ArgGen a = n.args().get(k);
                args.add(switch (a.kind()) {
                    case 0 -> i > 0 ? new FromNode(a.pick() % i) : new FromInput(a.pick() % gen.inputArity());
                    case 1 -> new FromInput(a.pick() % gen.inputArity());
                    default -> new Const(a.constant());
                });
            }
            calls.add(new Call(n.actor() % gen.actors(), n.arity(), args));
        }
        return calls;
    }

    /** Evaluates the calls in order, as the graph would, and returns the outputs' values. */
    private static List<Integer> interpret(List<Call> calls, List<Integer> input, List<Integer> outputs) {
        int[] values = new int[calls.size()];
        for (int i = 0; i < calls.size(); i++) {
            Call c = calls.get(i);
            int[] a = new int[3];
            for (int k = 0; k < c.arity(); k++) {
                a[k] = switch (c.args().get(k)) {
                    case FromNode(int node) -> values[node];
                    case FromInput(int position) -> input.get(position);
                    case Const(int value) -> value;
                };
            }
            values[i] = Pure.eval(c.actor(), c.arity(), a[0], a[1], a[2]);
        }
        return outputs.stream().map(o -> values[o]).toList();
    }
}
