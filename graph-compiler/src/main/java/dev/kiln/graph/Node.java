package dev.kiln.graph;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.List;
import java.util.concurrent.atomic.AtomicLong;

/**
 * A value in a graph: the graph's input, one of its arguments, a constant, the result of an actor method
 * call, one member's result of an all-reduce, or the graph's several outputs. Nodes are created by
 * {@link Graph#input()} (and {@link Graph#input2()} with its {@link InputNode2#first()}, ...),
 * {@link Graph#constant(Object)}, {@code ActorRef.bind(...)}, {@link Graph#allReduce(List)} and
 * {@link Graph#outputs(Node, Node)} (and its overloads).
 *
 * <p>The type parameter is checked by javac: {@code bind} takes, at each argument position, a node whose
 * type is the method's parameter type or a subtype, and {@code Kiln.compile} types the compiled graph with
 * the input node's and the output node's types.
 *
 * <p>A node may be compiled once: after {@code Kiln.compile} it belongs to that compiled
 * graph, and binding new calls on it to compile a second graph fails with a
 * {@code GraphCompileException}. Build a new graph instead.
 *
 * <p>Graph building is meant for one thread; nodes are safe to publish to other threads
 * after they are built.
 *
 * @param <T> the type of the value the node produces
 */
public sealed class Node<T> permits InputNode {

    /** What a node is. */
    public enum Kind {
        /** The whole graph input ({@link Graph#input()}). */
        INPUT,
        /** One component of a several-argument input ({@link InputNode2#first()}, ...). */
        INPUT_ARG,
        /**
         * A constant ({@link Graph#constant(Object)}). {@code bind} passes its value, which is in {@link #args()}
         * of the call, not the node.
         */
        CONSTANT,
        /** An actor method call. */
        CALL,
        /**
         * One member's result of an all-reduce ({@link Graph#allReduce(List)}): the element-wise sum of every
         * member's input, on the member's actor.
         */
        ALL_REDUCE,
        /** Several outputs as a tuple ({@link Graph#outputs(Node, Node)}, with three or four nodes too). */
        OUTPUTS,
        /** Several outputs as a list ({@link Graph#outputs(List)}). */
        OUTPUT_LIST
    }

    private static final AtomicLong SERIALS = new AtomicLong();

    private final long serial = SERIALS.incrementAndGet();
    private final Kind kind;
    private final InputNode<?> input;
    private final int argIndex;
    private final ActorRef<?> actor;
    private final MethodRef method;
    private final List<Object> args;
    private final int member;
    private final List<Node<?>> collective;
    private final List<Node<?>> downstream = Collections.synchronizedList(new ArrayList<>());
    private volatile Transport transport = Transport.AUTO;
    private volatile Object compiledBy;

    Node(Kind kind, InputNode<?> input, int argIndex, ActorRef<?> actor, MethodRef method, Object[] args) {
        this(kind, input, argIndex, actor, method, args, -1, List.of());
    }

    /** An output of an all-reduce: member {@code member} of {@code collective}, which is filled in later. */
    Node(Node<?> memberInput, int member, List<Node<?>> collective) {
        this(Kind.ALL_REDUCE, memberInput.input(), -1, memberInput.actor(), null, new Object[] {memberInput}, member,
                Collections.unmodifiableList(collective));
    }

    private Node(Kind kind, InputNode<?> input, int argIndex, ActorRef<?> actor, MethodRef method, Object[] args,
                 int member, List<Node<?>> collective) {
        this.kind = kind;
        this.input = input;
        this.argIndex = argIndex;
        this.actor = actor;
        this.method = method;
        this.member = member;
        this.collective = collective;
        this.args = Collections.unmodifiableList(Arrays.asList(args.clone()));
        for (Object arg : args) {
            if (kind != Kind.CONSTANT && arg instanceof Node<?> upstream) {
                upstream.downstream.add(this);
            }
        }
    }

    /**
     * Sets how this node's value travels to the actors that read it; the default is
     * {@link Transport#AUTO}.
     *
     * @param transport the transport for every edge leaving this node
     * @return this node
     */
    public Node<T> withTransport(Transport transport) {
        if (transport == null) {
            throw new NullPointerException("transport");
        }
        this.transport = transport;
        return this;
    }

    /** {@return the transport asked for with {@link #withTransport(Transport)}} */
    public Transport transport() {
        return transport;
    }

    /** {@return what this node is} */
    public Kind kind() {
        return kind;
    }

    /** {@return a number unique in this JVM, increasing in creation (and so bind) order} */
    public long serial() {
        return serial;
    }

    /** {@return the input node of the graph this node reads, or {@code null} for a call on constants only} */
    public InputNode<?> input() {
        return input;
    }

    /** {@return the component index for {@link Kind#INPUT_ARG} (0 for {@code first()}), else -1} */
    public int argIndex() {
        return argIndex;
    }

    /**
     * {@return the actor called, for {@link Kind#CALL}; the member's actor (its input's), for {@link Kind#ALL_REDUCE};
     *         else {@code null}}
     */
    public ActorRef<?> actor() {
        return actor;
    }

    /** {@return the method called, for {@link Kind#CALL}; else {@code null}} */
    public MethodRef method() {
        return method;
    }

    /**
     * {@return the call's arguments (each a {@code Node}, or the value of a {@link Graph#constant(Object)}, possibly
     *         null), the member's input for {@link Kind#ALL_REDUCE}, the output nodes of {@link Kind#OUTPUTS} and
     *         {@link Kind#OUTPUT_LIST}, the value of a {@link Kind#CONSTANT}; the input node for
     *         {@link Kind#INPUT_ARG}; empty for the input}
     */
    public List<Object> args() {
        return args;
    }

    /** {@return this output's member index in its all-reduce (its input's position), for {@link Kind#ALL_REDUCE}; else -1} */
    public int member() {
        return member;
    }

    /**
     * {@return for {@link Kind#ALL_REDUCE}, every output of its all-reduce in member order (this one included);
     *         else empty}
     */
    public List<Node<?>> collective() {
        return collective;
    }

    /** {@return a snapshot of the nodes bound on this node so far, in bind order} */
    public List<Node<?>> downstream() {
        synchronized (downstream) {
            return List.copyOf(downstream);
        }
    }

    /** {@return the compiled graph this node belongs to, or {@code null} if it was never compiled} */
    public Object compiledBy() {
        return compiledBy;
    }

    /**
     * Marks this node as part of a compiled graph; a runtime calls it through {@code GraphInternals.claim}.
     *
     * @param owner the compiled graph
     * @return {@code null} if the node was free, else the graph that already owns it
     */
    Object claim(Object owner) {
        synchronized (this) {
            Object previous = compiledBy;
            if (previous == null) {
                compiledBy = owner;
            }
            return previous;
        }
    }

    /**
     * {@return a short label: {@code input}, {@code input[1]} (the second component), {@code constant},
     *         {@code actor.method}, {@code allreduce[i]} (member i; a compiled plan numbers its all-reduces,
     *         {@code allreduce#k[i]}) or {@code outputs}}
     */
    public String label() {
        return switch (kind) {
            case INPUT -> "input";
            case INPUT_ARG -> "input[" + argIndex + "]";
            case CONSTANT -> "constant";
            case CALL -> actor.name() + "." + method.name();
            case ALL_REDUCE -> "allreduce[" + member + "]";
            case OUTPUTS, OUTPUT_LIST -> "outputs";
        };
    }

    @Override
    public String toString() {
        return "Node(" + label() + ")";
    }

    static InputNode<?> inputOf(Object[] args) {
        InputNode<?> found = null;
        for (Object arg : args) {
            if (arg instanceof Node<?> node && node.input() != null) {
                if (found != null && found != node.input()) {
                    throw new IllegalArgumentException("arguments come from two different Graph.input() nodes: "
                            + "a graph has exactly one input; use Graph.input2() (first(), second()) and up to "
                            + "input8() for several arguments");
                }
                found = node.input();
            }
        }
        return found;
    }
}
