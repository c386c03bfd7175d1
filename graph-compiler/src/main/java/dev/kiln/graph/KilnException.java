package dev.kiln.graph;

import java.io.Serial;

/**
 * The base of every exception Kiln throws to its users, so that one {@code catch (KilnException e)} catches
 * whatever Kiln itself reports. Unchecked. The family:
 * <ul>
 *   <li>building and compiling a graph: {@code dev.kiln.compiler.GraphCompileException};</li>
 *   <li>creating actors: {@code dev.kiln.ActorCreationException};</li>
 *   <li>executing: {@code dev.kiln.ActorTaskException} (an actor method threw),
 *       {@code dev.kiln.RemoteActorException} (its cause, when the method ran in another JVM),
 *       {@code dev.kiln.ActorDiedException}, {@code dev.kiln.ChannelTimeoutException},
 *       {@code dev.kiln.CapacityExceededException}, {@code dev.kiln.GraphClosedException},
 *       {@code dev.kiln.GraphRestartedException};</li>
 *   <li>native libraries: {@code dev.kiln.cuda.NativeCallException} (and its subclasses
 *       {@code CudaException}, {@code CudaDriverException}, {@code NvrtcException},
 *       {@code dev.kiln.nccl.NcclException}) and {@code dev.kiln.cuda.NativeUnavailableException};</li>
 *   <li>worker JVMs: {@code dev.kiln.executor.RemoteHost.WorkerDeathException} and
 *       {@code dev.kiln.executor.WorkerNode.JoinFailedException}.</li>
 * </ul>
 * Misuse of an argument or of a closed object is still reported with the JDK's
 * {@link IllegalArgumentException}, {@link IllegalStateException} and {@link NullPointerException}, as a Java
 * user expects, and an actor method's own exception reaches the caller as the cause of an
 * {@code ActorTaskException}, never bare; so does a value that cannot cross to another JVM (an
 * {@code IllegalArgumentException} whose cause is the codec's
 * {@code dev.kiln.transport.ValueCodec.UnregisteredClassException}, an {@code IllegalArgumentException} of the
 * codec's own API). {@code NativeUnavailableException} was an {@code IllegalStateException}: catch it, or
 * {@code KilnException}, by name.
 */
public class KilnException extends RuntimeException {

    @Serial
    private static final long serialVersionUID = 1L;

    /**
     * Creates the exception.
     *
     * @param message what is wrong and what to do
     */
    public KilnException(String message) {
        super(message);
    }

    /**
     * Creates the exception with a cause.
     *
     * @param message what is wrong and what to do
     * @param cause   the underlying failure, or {@code null}
     */
    public KilnException(String message, Throwable cause) {
        super(message, cause);
    }

    /**
     * Creates the exception, choosing whether it records a stack trace (a subclass that carries another
     * process's trace sets its own).
     *
     * @param message            what is wrong and what to do
     * @param cause              the underlying failure, or {@code null}
     * @param enableSuppression  whether suppressed exceptions are recorded
     * @param writableStackTrace whether the stack trace is filled in
     */
    protected KilnException(String message, Throwable cause, boolean enableSuppression, boolean writableStackTrace) {
        super(message, cause, enableSuppression, writableStackTrace);
    }
}
