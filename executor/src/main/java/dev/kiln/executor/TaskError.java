package dev.kiln.executor;

/**
 * The value an execution carries instead of a result once an actor method threw: it travels
 * along the graph's edges in place of the value, downstream calls skip their compute and
 * forward it, and the driver turns it into an {@code ActorTaskException}.
 *
 * @param actor    the actor's name
 * @param method   the method that threw
 * @param sequence the execution's sequence number
 * @param cause    what the method threw
 */
public record TaskError(String actor, String method, long sequence, Throwable cause) {
}
