package dev.kiln.executor;

import dev.kiln.RemoteActorException;
import dev.kiln.transport.RemoteError;

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

    /** @return the error as it crosses processes: strings only */
    public RemoteError toRemote() {
        return cause instanceof RemoteActorException r
                ? new RemoteError(actor, method, sequence, r.exceptionClass(), r.remoteMessage(), r.remoteStackTrace())
                : RemoteError.of(actor, method, sequence, cause);
    }

    /**
     * @param error an error read from a channel shared with another process
     * @return the task error, its cause a {@link RemoteActorException} describing the remote exception
     */
    public static TaskError fromRemote(RemoteError error) {
        return new TaskError(error.actor(), error.method(), error.sequence(), new RemoteActorException(error));
    }
}
