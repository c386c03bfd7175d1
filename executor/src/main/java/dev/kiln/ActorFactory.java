package dev.kiln;

import java.io.Serializable;

/**
 * Creates an actor instance, usually a constructor reference such as {@code Model::new} or a
 * lambda {@code () -> new Model(0)}. Serializable so that it can create the actor in the
 * process that hosts it. Called once, on the actor's own thread.
 *
 * @param <A> the actor's class
 */
@FunctionalInterface
public interface ActorFactory<A> extends Serializable {
    /**
     * {@return a new actor instance}
     *
     * @throws Exception if the actor cannot be created; {@code Kiln.actor} then throws {@link ActorCreationException}
     */
    A create() throws Exception;
}
