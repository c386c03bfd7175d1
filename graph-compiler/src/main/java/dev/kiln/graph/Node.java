package dev.kiln.graph;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.List;
import java.util.concurrent.atomic.AtomicLong;

/**
 * A value in a graph: the graph's input, one of its arguments, the result of an actor method
 * call, or a list of outputs. Nodes are created by {@link Graph#input()},
 * {@link InputNode#arg(int)}, {@code ActorRef.bind(...)} and {@link Graph#outputs(Node...)}.
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
        /** One positional argument of the input ({@link InputNode#arg(int)}). */
        INPUT_ARG,
        /** An actor method call. */
        CALL,
        /** A multi-output list ({@link Graph#outputs(Node...)}). */
        OUTPUTS
    }

    private static final AtomicLong SERIALS = new AtomicLong();

    private final long serial = SERIALS.incrementAndGet();
    private final Kind kind;
    private final InputNode<?> input;
    private final int argIndex;
    private final ActorRef<?> actor;
    private final MethodRef method;
    private final List<Object> args;
    private final List<Node<?>> downstream = Collections.synchronizedList(new ArrayList<>());
    private volatile Transport transport = Transport.AUTO;
    private volatile Object compiledBy;

    Node(Kind kind, InputNode<?> input, int argIndex, ActorRef<?> actor, MethodRef method, Object[] args) {
        this.kind = kind;
        this.input = input;
        this.argIndex = argIndex;
        this.actor = actor;
        this.method = method;
        this.args = Collections.unmodifiableList(Arrays.asList(args.clone()));
        for (Object arg : args) {
            if (arg instanceof Node<?> upstream) {
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

    /** @return the transport asked for with {@link #withTransport(Transport)} */
    public Transport transport() {
        return transport;
    }

    /** @return what this node is */
    public Kind kind() {
        return kind;
    }

    /** @return a number unique in this JVM, increasing in creation (and so bind) order */
    public long serial() {
        return serial;
    }

    /** @return the input node of the graph this node reads, or {@code null} for a call on constants only */
    public InputNode<?> input() {
        return input;
    }

    /** @return the argument index for {@link Kind#INPUT_ARG}, else -1 */
    public int argIndex() {
        return argIndex;
    }

    /** @return the actor called, for {@link Kind#CALL}; else {@code null} */
    public ActorRef<?> actor() {
        return actor;
    }

    /** @return the method called, for {@link Kind#CALL}; else {@code null} */
    public MethodRef method() {
        return method;
    }

    /**
     * @return the call's arguments (each a {@code Node} or a constant, possibly null), or the
     *         output nodes of {@link Kind#OUTPUTS}; empty for the input
     */
    public List<Object> args() {
        return args;
    }

    /** @return a snapshot of the nodes bound on this node so far, in bind order */
    public List<Node<?>> downstream() {
        synchronized (downstream) {
            return List.copyOf(downstream);
        }
    }

    /** @return the compiled graph this node belongs to, or {@code null} if it was never compiled */
    public Object compiledBy() {
        return compiledBy;
    }

    /**
     * Marks this node as part of a compiled graph.
     *
     * @param owner the compiled graph
     * @return {@code null} if the node was free, else the graph that already owns it
     */
    public Object claim(Object owner) {
        synchronized (this) {
            Object previous = compiledBy;
            if (previous == null) {
                compiledBy = owner;
            }
            return previous;
        }
    }

    /** @return a short label: {@code input}, {@code input[1]}, {@code actor.method} or {@code outputs} */
    public String label() {
        return switch (kind) {
            case INPUT -> "input";
            case INPUT_ARG -> "input[" + argIndex + "]";
            case CALL -> actor.name() + "." + method.name();
            case OUTPUTS -> "outputs";
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
                            + "a graph has exactly one input; use InputNode.arg(i) for several arguments");
                }
                found = node.input();
            }
        }
        return found;
    }
}
