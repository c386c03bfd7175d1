package dev.kiln.compiler;

import dev.kiln.compiler.TestActors.Text;
import dev.kiln.graph.ActorRef;
import dev.kiln.graph.Graph;
import dev.kiln.graph.InputNode;
import dev.kiln.graph.InputNode3;
import dev.kiln.graph.Node;
import dev.kiln.graph.Tuple2;
import dev.kiln.graph.Tuple3;
import dev.kiln.graph.Tuple4;
import org.junit.jupiter.api.Test;

import java.util.List;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;

/** The typed graph-building API: constants, tuple inputs and outputs, list outputs, and their runtime layout. */
class GraphApiTest {

    private final ActorRef<Text> a = TestActors.text(1, "a");
    private final ActorRef<Text> b = TestActors.text(2, "b");

    @Test
    void aConstantPassesItsValueAndMayBeBoundInSeveralGraphs() {
        Node<Integer> three = Graph.constant(3);
        assertEquals(Node.Kind.CONSTANT, three.kind());
        Node<String> x = a.bind(Text::repeat, Graph.input(), three);
        Node<String> y = b.bind(Text::repeat, Graph.input(), three);
        assertSame(3, x.args().get(1), "bind passes the value, so the plan keeps its ConstantArg");
        assertSame(3, y.args().get(1));
        assertEquals(List.of(), three.downstream(), "a constant belongs to no graph");
        assertEquals(java.util.Collections.singletonList(null), Graph.constant(null).args());
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> Graph.constant(x));
        assertEquals("Graph.constant(" + x + "): a node is not a constant; bind the node", e.getMessage());
        NullPointerException npe = assertThrows(NullPointerException.class,
                () -> a.bind(Text::repeat, Graph.input(), null));
        assertEquals("argument 2 of bind is null; pass a node, or Graph.constant(null) for a null argument",
                npe.getMessage());
    }

    @Test
    void outputsBuildTuplesAndLists() {
        InputNode<String> in = Graph.input();
        Node<String> x = a.bind(Text::upper, in);
        Node<String> y = b.bind(Text::lower, in);
        assertEquals(new Tuple2<>("X", "y"), GraphCompiler.outputValue(Graph.outputs(x, y), new Object[] {"X", "y"}));
        assertEquals(new Tuple3<>("X", "y", "X"),
                GraphCompiler.outputValue(Graph.outputs(x, y, x), new Object[] {"X", "y", "X"}));
        assertEquals(new Tuple4<>(1, 2, 3, 4),
                GraphCompiler.outputValue(Graph.outputs(x, y, x, y), new Object[] {1, 2, 3, 4}));
        Node<List<String>> list = Graph.outputs(List.of(x, y, y));
        assertEquals(Node.Kind.OUTPUT_LIST, list.kind());
        Object value = GraphCompiler.outputValue(list, new Object[] {"X", "y", "y"});
        assertEquals(List.of("X", "y", "y"), value);
        assertThrows(UnsupportedOperationException.class, () -> ((List<?>) value).clear());
        assertThrows(IllegalArgumentException.class, () -> GraphCompiler.outputValue(list, new Object[] {"X"}));
        assertThrows(IllegalArgumentException.class, () -> GraphCompiler.outputValue(x, new Object[] {"X"}));
    }

    @Test
    void aTupleInputIsLaidOutAsItsComponents() {
        InputNode3<String, String, String> in = Graph.input3();
        ExecutionPlan plan = GraphCompiler.compile(a.bind(Text::join3, in.third(), in.first(), in.second()),
                TestActors.topology(a), CompileOptions.defaults());
        assertEquals(3, plan.inputArity());
        assertArrayEquals(new Object[] {"p", "q", "r"},
                (Object[]) GraphCompiler.inputRecord(plan, new Tuple3<>("p", "q", "r")));
        NullPointerException npe = assertThrows(NullPointerException.class, () -> GraphCompiler.inputRecord(plan, null));
        assertEquals("the graph takes a Tuple3 of its arguments, execute got null", npe.getMessage());
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> GraphCompiler.inputRecord(plan, new Tuple2<>("p", "q")));
        assertEquals("the graph takes a Tuple3 of its arguments, execute got a " + Tuple2.class.getName(), e.getMessage());

        InputNode<String> one = Graph.input();
        ExecutionPlan single = GraphCompiler.compile(a.bind(Text::upper, one), TestActors.topology(a),
                CompileOptions.defaults());
        assertSame("p", GraphCompiler.inputRecord(single, "p"), "one argument is passed as it is");
    }

    @Test
    void hostCopyIsTheSameNode() {
        InputNode<String> in = Graph.input();
        Node<String> x = a.bind(Text::upper, in);
        @SuppressWarnings("unchecked")
        Node<dev.kiln.tensor.DeviceTensor> gpu = (Node<dev.kiln.tensor.DeviceTensor>) (Node<?>) x;
        assertSame(gpu, Graph.hostCopy(gpu));
        assertThrows(NullPointerException.class, () -> Graph.hostCopy(null));
    }
}
