package dev.kiln.graph;

/**
 * The input of a graph of 3 arguments ({@link Graph#input3()}): each execution passes a
 * {@code new Tuple3<>(...)}, and the graph binds its components {@link #first()}, {@link #second()}, {@link #third()}.
 * Bind the components, not this node: an actor method cannot take the whole tuple ({@code Kiln.compile} refuses
 * it). A component nothing binds is ignored.
 *
 * @param <A> the first argument's type
 * @param <B> the second argument's type
 * @param <C> the third argument's type
 */
public final class InputNode3<A, B, C> extends InputNode<Tuple3<A, B, C>> {

    private final Node<A> first;
    private final Node<B> second;
    private final Node<C> third;

    InputNode3() {
        super(3);
        this.first = component(0);
        this.second = component(1);
        this.third = component(2);
    }

    /** {@return the node of the first argument, {@code Tuple3.first()} of each execution's input; the same node each call} */
    public Node<A> first() {
        return first;
    }

    /** {@return the node of the second argument, {@code Tuple3.second()} of each execution's input; the same node each call} */
    public Node<B> second() {
        return second;
    }

    /** {@return the node of the third argument, {@code Tuple3.third()} of each execution's input; the same node each call} */
    public Node<C> third() {
        return third;
    }

    @Override
    public InputNode3<A, B, C> withTransport(Transport transport) {
        super.withTransport(transport);
        return this;
    }
}
