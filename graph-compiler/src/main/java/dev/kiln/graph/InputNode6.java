package dev.kiln.graph;

/**
 * The input of a graph of 6 arguments ({@link Graph#input6()}): each execution passes a
 * {@code new Tuple6<>(...)}, and the graph binds its components {@link #first()}, {@link #second()}, {@link #third()}, {@link #fourth()}, {@link #fifth()}, {@link #sixth()}.
 * Bind the components, not this node: an actor method cannot take the whole tuple ({@code Kiln.compile} refuses
 * it). A component nothing binds is ignored.
 *
 * @param <A> the first argument's type
 * @param <B> the second argument's type
 * @param <C> the third argument's type
 * @param <D> the fourth argument's type
 * @param <E> the fifth argument's type
 * @param <F> the sixth argument's type
 */
public final class InputNode6<A, B, C, D, E, F> extends InputNode<Tuple6<A, B, C, D, E, F>> {

    private final Node<A> first;
    private final Node<B> second;
    private final Node<C> third;
    private final Node<D> fourth;
    private final Node<E> fifth;
    private final Node<F> sixth;

    InputNode6() {
        super(6);
        this.first = component(0);
        this.second = component(1);
        this.third = component(2);
        this.fourth = component(3);
        this.fifth = component(4);
        this.sixth = component(5);
    }

    /** {@return the node of the first argument, {@code Tuple6.first()} of each execution's input; the same node each call} */
    public Node<A> first() {
        return first;
    }

    /** {@return the node of the second argument, {@code Tuple6.second()} of each execution's input; the same node each call} */
    public Node<B> second() {
        return second;
    }

    /** {@return the node of the third argument, {@code Tuple6.third()} of each execution's input; the same node each call} */
    public Node<C> third() {
        return third;
    }

    /** {@return the node of the fourth argument, {@code Tuple6.fourth()} of each execution's input; the same node each call} */
    public Node<D> fourth() {
        return fourth;
    }

    /** {@return the node of the fifth argument, {@code Tuple6.fifth()} of each execution's input; the same node each call} */
    public Node<E> fifth() {
        return fifth;
    }

    /** {@return the node of the sixth argument, {@code Tuple6.sixth()} of each execution's input; the same node each call} */
    public Node<F> sixth() {
        return sixth;
    }

    @Override
    public InputNode6<A, B, C, D, E, F> withTransport(Transport transport) {
        super.withTransport(transport);
        return this;
    }
}
