package dev.kiln.compiler;

import dev.kiln.graph.KilnException;

import java.io.Serial;

/**
 * A graph cannot be compiled. The message names the node (or actor) at fault and how to fix it.
 */
public final class GraphCompileException extends KilnException {

    @Serial
    private static final long serialVersionUID = 1L;

    /** Label of the node at fault. */
    private final String node;

    /**
     * Creates the exception.
     *
     * @param node    label of the node at fault, e.g. {@code model.forward}, or of the graph part
     * @param message what is wrong and what to do
     */
    public GraphCompileException(String node, String message) {
        super(node + ": " + message);
        this.node = node;
    }

    /** {@return label of the node at fault} */
    public String node() {
        return node;
    }
}
