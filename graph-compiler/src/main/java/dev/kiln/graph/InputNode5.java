package dev.kiln.graph;

/**
 * The input of a graph of 5 arguments ({@link Graph#input5()}): each execution passes a
 * {@code new Tuple5<>(...)}, and the graph binds its components {@link #first()}, {@link #second()}, {@link #third()}, {@link #fourth()}, {@link #fifth()}.
 * Bind the components, not this node: an actor method cannot take the whole tuple ({@code Kiln.compile} refuses
 * it). A component nothing binds is ignored.
 *
 * @param <A> the first argument's type
 * @param <B> the second argument's type
 * @param <C> the third argument's type
 * @param <D> the fourth argument's type
 * @param <E> the fifth argument's type
 */
public final class InputNode5<A, B, C, D, E> extends InputNode<Tuple5<A, B, C, D, E>> {

    private final Node<A> first;
    private final Node<B> second;
    private final Node<C> third;
    private final Node<D> fourth;
    private final Node<E> fifth;

    InputNode5() {
        super(5);
        this.first = component(0);
        this.second = component(1);
        this.third = component(2);
        this.fourth = component(3);
        this.fifth = component(4);
    }

    /** {@return the node of the first argument, {@code Tuple5.first()} of each execution's input; the same node each call} */
    public Node<A> first() {
        return first;
    }

    /** {@return the node of the second argument, {@code Tuple5.second()} of each execution's input; the same node each call} */
    public Node<B> second() {
        return second;
    }

    /** {@return the node of the third argument, {@code Tuple5.third()} of each execution's input; the same node each call} */
    public Node<C> third() {
        return third;
    }

    /** {@return the node of the fourth argument, {@code Tuple5.fourth()} of each execution's input; the same node each call} */
    public Node<D> fourth() {
        return fourth;
    }

    /** {@return the node of the fifth argument, {@code Tuple5.fifth()} of each execution's input; the same node each call} */
    public Node<E> fifth() {
        return fifth;
    }

    @Override
    public InputNode5<A, B, C, D, E> withTransport(Transport transport) {
        super.withTransport(transport);
        return this;
    }
}
