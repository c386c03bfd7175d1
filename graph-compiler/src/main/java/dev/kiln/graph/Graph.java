package dev.kiln.graph;

import java.util.List;

/** Entry points for building a graph: its input and, for several results, its outputs. */
public final class Graph {

    private Graph() {
    }

    /**
     * Creates the input of a new graph.
     *
     * @param <T> the input type
     * @return a fresh input node
     */
    public static <T> InputNode<T> input() {
        return new InputNode<>();
    }

    /**
     * Makes a multi-output graph: its future yields a {@code List<Object>} with one element
     * per node, in this order. A node may appear more than once.
     *
     * @param outputs the nodes whose values the graph returns, at least one
     * @return a node standing for the list of outputs; pass it to {@code Kiln.compile}
     * @throws IllegalArgumentException if {@code outputs} is empty, or its nodes come from two different
     *                                  {@link #input()} nodes
     */
    public static Node<List<Object>> outputs(Node<?>... outputs) {
        if (outputs.length == 0) {
            throw new IllegalArgumentException("Graph.outputs needs at least one node");
        }
        for (Node<?> out : outputs) {
            if (out == null) {
                throw new NullPointerException("an output node is null");
            }
        }
        Object[] args = outputs.clone();
        return new Node<>(Node.Kind.OUTPUTS, Node.inputOf(args), -1, null, null, args);
    }
}
