package dev.kiln.graph;

/**
 * The input of a graph: the value passed to {@code execute(input)}. {@link Graph#input()} makes a graph of one
 * argument; {@link Graph#input2()} to {@link Graph#input8()} make graphs of two to eight arguments (as many as
 * {@code bind} takes), whose input is a {@link Tuple2} to {@link Tuple8} and whose components
 * ({@link InputNode2#first()}, ...) are bound as nodes. Pass the input node to {@code Kiln.compile(input, output)}:
 * its type becomes the compiled graph's input type.
 *
 * <p>Why a tuple rather than {@code execute(a, b)}: {@code CompiledGraph<I, O>} has one input type, so one
 * {@code execute(I)} checks every graph's argument; the caller's tuple replaces the varargs array the untyped
 * {@code execute(a, b, ...)} allocated, so a several-argument execution allocates no more than it did.
 *
 * @param <T> the input type
 */
public sealed class InputNode<T> extends Node<T> permits InputNode2, InputNode3, InputNode4, InputNode5, InputNode6,
        InputNode7, InputNode8 {

    private final int arity;

    InputNode(int arity) {
        super(Kind.INPUT, null, 0, null, null, new Object[0]);
        this.arity = arity;
    }

    @Override
    public InputNode<?> input() {
        return this;
    }

    /**
     * {@return how many arguments the input carries: 1 for {@link Graph#input()}, 2 to 8 for a tuple input, whose
     *          executions pass a {@code Tuple2} to {@code Tuple8}}
     */
    public int arity() {
        return arity;
    }

    /** A node reading component {@code index} of a tuple input. */
    <V> Node<V> component(int index) {
        return new Node<>(Kind.INPUT_ARG, this, index, null, null, new Object[] {this});
    }

    @Override
    public InputNode<T> withTransport(Transport transport) {
        super.withTransport(transport);
        return this;
    }
}
