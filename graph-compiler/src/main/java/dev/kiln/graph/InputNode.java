package dev.kiln.graph;

/**
 * The single input of a graph. Used directly, it stands for the one argument of
 * {@code execute(x)}; {@link #arg(int)} selects positional argument {@code i} of
 * {@code execute(a, b, ...)}. Every argument from 0 to the highest one used must be used.
 *
 * @param <T> the input type
 */
public final class InputNode<T> extends Node<T> {

    InputNode() {
        super(Kind.INPUT, null, 0, null, null, new Object[0]);
    }

    @Override
    public InputNode<?> input() {
        return this;
    }

    /**
     * Selects positional argument {@code index} of {@code execute(a, b, ...)}.
     *
     * @param index the argument position, from 0
     * @param <V>   the argument's type
     * @return a node for that argument
     * @throws IllegalArgumentException if {@code index} is negative
     */
    public <V> Node<V> arg(int index) {
        if (index < 0) {
            throw new IllegalArgumentException("argument index must be >= 0, got " + index);
        }
        return new Node<>(Kind.INPUT_ARG, this, index, null, null, new Object[] {this});
    }

    @Override
    public InputNode<T> withTransport(Transport transport) {
        super.withTransport(transport);
        return this;
    }
}
