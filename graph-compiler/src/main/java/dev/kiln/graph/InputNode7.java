package dev.kiln.graph;

/**
 * The input of a graph of 7 arguments ({@link Graph#input7()}): each execution passes a
 * {@code new Tuple7<>(...)}, and the graph binds its components {@link #first()}, {@link #second()}, {@link #third()}, {@link #fourth()}, {@link #fifth()}, {@link #sixth()}, {@link #seventh()}.
 * Bind the components, not this node: an actor method cannot take the whole tuple ({@code Kiln.compile} refuses
 * it). A component nothing binds is ignored.
 *
 * @param <A> the first argument's type
 * @param <B> the second argument's type
 * @param <C> the third argument's type
 * @param <D> the fourth argument's type
 * @param <E> the fifth argument's type
 * @param <F> the sixth argument's type
 * @param <G> the seventh argument's type
 */
public final class InputNode7<A, B, C, D, E, F, G> extends InputNode<Tuple7<A, B, C, D, E, F, G>> {

    private final Node<A> first;
    private final Node<B> second;
    private final Node<C> third;
    private final Node<D> fourth;
    private final Node<E> fifth;
    private final Node<F> sixth;
    private final Node<G> seventh;

    InputNode7() {
        super(7);
        this.first = component(0);
        this.second = component(1);
        this.third = component(2);
        this.fourth = component(3);
        this.fifth = component(4);
        this.sixth = component(5);
        this.seventh = component(6);
    }

    /** {@return the node of the first argument, {@code Tuple7.first()} of each execution's input; the same node each call} */
    public Node<A> first() {
        return first;
    }

    /** {@return the node of the second argument, {@code Tuple7.second()} of each execution's input; the same node each call} */
    public Node<B> second() {
        return second;
    }

    /** {@return the node of the third argument, {@code Tuple7.third()} of each execution's input; the same node each call} */
    public Node<C> third() {
        return third;
    }

    /** {@return the node of the fourth argument, {@code Tuple7.fourth()} of each execution's input; the same node each call} */
    public Node<D> fourth() {
        return fourth;
    }

    /** {@return the node of the fifth argument, {@code Tuple7.fifth()} of each execution's input; the same node each call} */
    public Node<E> fifth() {
        return fifth;
    }

    /** {@return the node of the sixth argument, {@code Tuple7.sixth()} of each execution's input; the same node each call} */
    public Node<F> sixth() {
        return sixth;
    }

    /** {@return the node of the seventh argument, {@code Tuple7.seventh()} of each execution's input; the same node each call} */
    public Node<G> seventh() {
        return seventh;
    }

    @Override
    public InputNode7<A, B, C, D, E, F, G> withTransport(Transport transport) {
        super.withTransport(transport);
        return this;
    }
}
