package dev.kiln.graph;

import dev.kiln.tensor.DeviceTensor;
import dev.kiln.tensor.Tensor;

import java.util.ArrayList;
import java.util.List;

/**
 * Entry points for building a graph: its input ({@link #input()}, or {@link #input2()} to {@link #input8()} for
 * several arguments), constants, all-reduces over several actors and, for several results, its outputs.
 */
public final class Graph {

    private Graph() {
    }

    /**
     * Creates the input of a new graph of one argument: {@code execute(x)} passes {@code x}.
     *
     * @param <T> the input type
     * @return a fresh input node
     */
    public static <T> InputNode<T> input() {
        return new InputNode<>(1);
    }

    /**
     * Creates the input of a new graph of two arguments: {@code execute(new Tuple2<>(a, b))} passes them, and
     * {@link InputNode2#first()} and {@link InputNode2#second()} are their nodes.
     *
     * @param <A> the first argument's type
     * @param <B> the second argument's type
     * @return a fresh input node
     */
    public static <A, B> InputNode2<A, B> input2() {
        return new InputNode2<>();
    }

    /**
     * Creates the input of a new graph of three arguments, passed as a {@link Tuple3}.
     *
     * @param <A> the first argument's type
     * @param <B> the second argument's type
     * @param <C> the third argument's type
     * @return a fresh input node
     */
    public static <A, B, C> InputNode3<A, B, C> input3() {
        return new InputNode3<>();
    }

    /**
     * Creates the input of a new graph of four arguments, passed as a {@link Tuple4}.
     *
     * @param <A> the first argument's type
     * @param <B> the second argument's type
     * @param <C> the third argument's type
     * @param <D> the fourth argument's type
     * @return a fresh input node
     */
    public static <A, B, C, D> InputNode4<A, B, C, D> input4() {
        return new InputNode4<>();
    }

    /**
     * Creates the input of a new graph of five arguments, passed as a {@link Tuple5}.
     *
     * @param <A> the first argument's type
     * @param <B> the second argument's type
     * @param <C> the third argument's type
     * @param <D> the fourth argument's type
     * @param <E> the fifth argument's type
     * @return a fresh input node
     */
    public static <A, B, C, D, E> InputNode5<A, B, C, D, E> input5() {
        return new InputNode5<>();
    }

    /**
     * Creates the input of a new graph of six arguments, passed as a {@link Tuple6}.
     *
     * @param <A> the first argument's type
     * @param <B> the second argument's type
     * @param <C> the third argument's type
     * @param <D> the fourth argument's type
     * @param <E> the fifth argument's type
     * @param <F> the sixth argument's type
     * @return a fresh input node
     */
    public static <A, B, C, D, E, F> InputNode6<A, B, C, D, E, F> input6() {
        return new InputNode6<>();
    }

    /**
     * Creates the input of a new graph of seven arguments, passed as a {@link Tuple7}.
     *
     * @param <A> the first argument's type
     * @param <B> the second argument's type
     * @param <C> the third argument's type
     * @param <D> the fourth argument's type
     * @param <E> the fifth argument's type
     * @param <F> the sixth argument's type
     * @param <G> the seventh argument's type
     * @return a fresh input node
     */
    public static <A, B, C, D, E, F, G> InputNode7<A, B, C, D, E, F, G> input7() {
        return new InputNode7<>();
    }

    /**
     * Creates the input of a new graph of eight arguments, passed as a {@link Tuple8}. Methods take at most 8 arguments; for more values, pass a record of your own to {@link #input()}.
     *
     * @param <A> the first argument's type
     * @param <B> the second argument's type
     * @param <C> the third argument's type
     * @param <D> the fourth argument's type
     * @param <E> the fifth argument's type
     * @param <F> the sixth argument's type
     * @param <G> the seventh argument's type
     * @param <H> the eighth argument's type
     * @return a fresh input node
     */
    public static <A, B, C, D, E, F, G, H> InputNode8<A, B, C, D, E, F, G, H> input8() {
        return new InputNode8<>();
    }

    /**
     * Makes a constant argument: {@code bind} passes {@code value} itself to every execution. A constant belongs
     * to no graph, so one constant node may be bound in several graphs. The value is shared by every execution
     * (and copied into each worker JVM that runs a method taking it): pass immutable values.
     *
     * @param value the value, possibly {@code null} (then give the type: {@code Graph.<String>constant(null)})
     * @param <T>   the value's type
     * @return a node standing for the value
     * @throws IllegalArgumentException if {@code value} is a node: bind the node itself
     */
    public static <T> Node<T> constant(T value) {
        if (value instanceof Node<?> node) {
            throw new IllegalArgumentException("Graph.constant(" + node + "): a node is not a constant; bind the node");
        }
        return new Node<>(Node.Kind.CONSTANT, null, -1, null, null, new Object[] {value});
    }

    /**
     * Types a GPU node as what an actor without a GPU receives from it. A {@code DeviceTensor} edge into an actor
     * that has no GPU is staged through host memory, so that actor's method takes the host {@code Tensor} (a view
     * borrowed for the call, see {@code Tensor}): bind it with {@code cpuActor.bind(Reader::sum, Graph.hostCopy(x))}.
     * This adds no node and copies nothing by itself; {@code Kiln.compile} refuses it where the reading actor has a
     * GPU (it receives the {@code DeviceTensor} there).
     *
     * @param node a node of a method declared to return {@code DeviceTensor}, or an all-reduce's output
     * @return the same node, typed as the host tensor its readers without a GPU get
     * @throws NullPointerException if {@code node} is null
     */
    @SuppressWarnings("unchecked")
    public static Node<Tensor> hostCopy(Node<DeviceTensor> node) {
        return (Node<Tensor>) (Node<?>) java.util.Objects.requireNonNull(node, "node");
    }

    /**
     * Makes a graph of two outputs: each execution's result is a {@link Tuple2} of their values. A node may
     * appear more than once.
     *
     * @param first  the node of {@link Tuple2#first()}
     * @param second the node of {@link Tuple2#second()}
     * @param <A>    the first output's type
     * @param <B>    the second output's type
     * @return a node standing for the outputs; pass it to {@code Kiln.compile}
     * @throws NullPointerException     if a node is null
     * @throws IllegalArgumentException if the nodes come from two different input nodes
     */
    public static <A, B> Node<Tuple2<A, B>> outputs(Node<A> first, Node<B> second) {
        return outputNode(Node.Kind.OUTPUTS, first, second);
    }

    /**
     * Makes a graph of three outputs: each execution's result is a {@link Tuple3} of their values.
     *
     * @param first  the node of {@link Tuple3#first()}
     * @param second the node of {@link Tuple3#second()}
     * @param third  the node of {@link Tuple3#third()}
     * @param <A>    the first output's type
     * @param <B>    the second output's type
     * @param <C>    the third output's type
     * @return a node standing for the outputs; pass it to {@code Kiln.compile}
     * @throws NullPointerException     if a node is null
     * @throws IllegalArgumentException if the nodes come from two different input nodes
     */
    public static <A, B, C> Node<Tuple3<A, B, C>> outputs(Node<A> first, Node<B> second, Node<C> third) {
        return outputNode(Node.Kind.OUTPUTS, first, second, third);
    }

    /**
     * Makes a graph of four outputs: each execution's result is a {@link Tuple4} of their values.
     *
     * @param first  the node of {@link Tuple4#first()}
     * @param second the node of {@link Tuple4#second()}
     * @param third  the node of {@link Tuple4#third()}
     * @param fourth the node of {@link Tuple4#fourth()}
     * @param <A>    the first output's type
     * @param <B>    the second output's type
     * @param <C>    the third output's type
     * @param <D>    the fourth output's type
     * @return a node standing for the outputs; pass it to {@code Kiln.compile}
     * @throws NullPointerException     if a node is null
     * @throws IllegalArgumentException if the nodes come from two different input nodes
     */
    public static <A, B, C, D> Node<Tuple4<A, B, C, D>> outputs(Node<A> first, Node<B> second, Node<C> third,
                                                                Node<D> fourth) {
        return outputNode(Node.Kind.OUTPUTS, first, second, third, fourth);
    }

    /**
     * Makes a graph of any number of outputs of one type: each execution's result is an unmodifiable
     * {@code List} of their values, in this order. A node may appear more than once. The element type is the nodes'
     * common type, e.g. {@code Node<List<DeviceTensor>>} for an all-reduce's outputs; nodes of different types make
     * a {@code List<Object>} (prefer a tuple, {@link #outputs(Node, Node)}, for two to four of them).
     *
     * @param outputs the nodes whose values the graph returns, at least one
     * @param <T>     the outputs' type
     * @return a node standing for the outputs; pass it to {@code Kiln.compile}
     * @throws NullPointerException     if {@code outputs} or one of its nodes is null
     * @throws IllegalArgumentException if {@code outputs} is empty, or its nodes come from two different input nodes
     */
    public static <T> Node<List<T>> outputs(List<? extends Node<? extends T>> outputs) {
        if (outputs.isEmpty()) {
            throw new IllegalArgumentException("Graph.outputs needs at least one node");
        }
        return outputNode(Node.Kind.OUTPUT_LIST, outputs.toArray(Node<?>[]::new));
    }

    private static <R> Node<R> outputNode(Node.Kind kind, Node<?>... outputs) {
        for (int i = 0; i < outputs.length; i++) {
            if (outputs[i] == null) {
                throw new NullPointerException("output " + i + " of Graph.outputs is null");
            }
        }
        Object[] args = outputs;
        return new Node<>(kind, Node.inputOf(args), -1, null, null, args);
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
