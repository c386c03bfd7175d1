package dev.kiln.graph;

/**
 * The input of a graph of 2 arguments ({@link Graph#input2()}): each execution passes a
 * {@code new Tuple2<>(...)}, and the graph binds its components {@link #first()}, {@link #second()}.
 * Bind the components, not this node: an actor method cannot take the whole tuple ({@code Kiln.compile} refuses
 * it). A component nothing binds is ignored.
 *
 * @param <A> the first argument's type
 * @param <B> the second argument's type
 */
public final class InputNode2<A, B> extends InputNode<Tuple2<A, B>> {

    private final Node<A> first;
    private final Node<B> second;

    InputNode2() {
        super(2);
        this.first = component(0);
        this.second = component(1);
    }

    /** {@return the node of the first argument, {@code Tuple2.first()} of each execution's input; the same node each call} */
    public Node<A> first() {
        return first;
    }

    /** {@return the node of the second argument, {@code Tuple2.second()} of each execution's input; the same node each call} */
    public Node<B> second() {
        return second;
    }

    @Override
    public InputNode2<A, B> withTransport(Transport transport) {
        super.withTransport(transport);
        return this;
    }
}
