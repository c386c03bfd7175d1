package dev.kiln.graph;

import dev.kiln.tensor.DeviceTensor;

import java.util.ArrayList;
import java.util.List;

/** Entry points for building a graph: its input, all-reduces over several actors and, for several results, its outputs. */
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

    /**
     * Sums device tensors over a group of GPU actors (an NCCL all-reduce): one output per input, in input order,
     * each on the same actor as its input, each the element-wise sum of all inputs. Every input must have the
     * same dtype and shape (the executor checks at run time).
     *
     * <p>Checked when the graph is compiled ({@code GraphCompileException}): at least 2 inputs, each computed by an
     * actor method declared to return {@link DeviceTensor} (or by another all-reduce), on distinct actors, each with
     * a GPU, no two on one GPU (NCCL refuses two ranks of one communicator on one GPU). Members may live in any
     * JVMs and on any hosts; the driver is never a member. The outputs of one all-reduce go together: when one
     * of them reaches the graph's outputs, every member takes part, and an output that nothing reads stays on its
     * actor.
     *
     * @param inputs each member's tensor, member 0 first
     * @return the members' results, in input order
     * @throws NullPointerException     if {@code inputs} or one of them is null
     * @throws IllegalArgumentException if {@code inputs} is empty, or its nodes come from two different
     *                                  {@link #input()} nodes
     */
    public static List<Node<DeviceTensor>> allReduce(List<? extends Node<DeviceTensor>> inputs) {
        if (inputs.isEmpty()) {
            throw new IllegalArgumentException("Graph.allReduce needs the input of every member, got none");
        }
        Object[] args = new Object[inputs.size()];
        for (int i = 0; i < args.length; i++) {
            if (inputs.get(i) == null) {
                throw new NullPointerException("input " + i + " of Graph.allReduce is null");
            }
            args[i] = inputs.get(i);
        }
        Node.inputOf(args);
        List<Node<?>> members = new ArrayList<>(args.length);
        List<Node<DeviceTensor>> outputs = new ArrayList<>(args.length);
        for (int i = 0; i < args.length; i++) {
            Node<DeviceTensor> out = new Node<>(inputs.get(i), i, members);
            members.add(out);
            outputs.add(out);
        }
        return List.copyOf(outputs);
    }
}
