package dev.kiln.graph;

/**
 * The input of a graph of 4 arguments ({@link Graph#input4()}): each execution passes a
 * {@code new Tuple4<>(...)}, and the graph binds its components {@link #first()}, {@link #second()}, {@link #third()}, {@link #fourth()}.
 * Bind the components, not this node: an actor method cannot take the whole tuple ({@code Kiln.compile} refuses
 * it). A component nothing binds is ignored.
 *
 * @param <A> the first argument's type
 * @param <B> the second argument's type
 * @param <C> the third argument's type
 * @param <D> the fourth argument's type
 */
public final class InputNode4<A, B, C, D> extends InputNode<Tuple4<A, B, C, D>> {

    private final Node<A> first;
    private final Node<B> second;
    private final Node<C> third;
    private final Node<D> fourth;

    InputNode4() {
        super(4);
        this.first = component(0);
        this.second = component(1);
        this.third = component(2);
        this.fourth = component(3);
    }

    /** {@return the node of the first argument, {@code Tuple4.first()} of each execution's input; the same node each call} */
    public Node<A> first() {
        return first;
    }

    /** {@return the node of the second argument, {@code Tuple4.second()} of each execution's input; the same node each call} */
    public Node<B> second() {
        return second;
    }

    /** {@return the node of the third argument, {@code Tuple4.third()} of each execution's input; the same node each call} */
    public Node<C> third() {
        return third;
    }

    /** {@return the node of the fourth argument, {@code Tuple4.fourth()} of each execution's input; the same node each call} */
    public Node<D> fourth() {
        return fourth;
    }

    @Override
    public InputNode4<A, B, C, D> withTransport(Transport transport) {
        super.withTransport(transport);
        return this;
    }
}
