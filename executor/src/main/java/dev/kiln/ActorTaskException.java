package dev.kiln;

import dev.kiln.graph.KilnException;

import java.io.Serial;

/**
 * An actor method threw while running one execution (or one dynamic call). Only that
 * execution fails: its downstream calls were skipped, every output of it fails with this,
 * and the graph stays usable. {@link #getCause()} is the method's exception.
 */
public final class ActorTaskException extends KilnException {

    @Serial
    private static final long serialVersionUID = 1L;

    /** The actor's name. */
    private final String actor;
    /** The method, e.g. {@code Model.forward}. */
    private final String method;
    /** The execution's sequence number. */
    private final long sequence;

    /**
     * Creates the exception.
     *
     * @param actor    the actor's name
     * @param method   the method, e.g. {@code Model.forward}
     * @param sequence the execution's sequence number (the dynamic path's call number for {@code Kiln.call})
     * @param cause    what the method threw
     */
    public ActorTaskException(String actor, String method, long sequence, Throwable cause) {
        super("execution #" + sequence + ": " + method + " on actor " + actor + " threw " + cause, cause);
        this.actor = actor;
        this.method = method;
        this.sequence = sequence;
    }

    /** {@return the actor's name} */
    public String actor() {
        return actor;
    }

    /** {@return the method that threw, e.g. {@code Model.forward}} */
    public String method() {
        return method;
    }

    /** {@return the execution's sequence number} */
    public long sequence() {
        return sequence;
    }
}
