package dev.kiln.executor;

import dev.kiln.transport.ValueCodec;
import dev.kiln.transport.WorkerInfo;

import java.time.Duration;
import java.util.concurrent.locks.LockSupport;

/**
 * The driver's handle on a worker that joined over Aeron UDP ({@link dev.kiln.KilnWorker}): someone else
 * started its JVM, on this host or another. Its control messages reach {@link #onMessage} through the
 * {@link ControlPlane}, which also declares it lost when it stays silent past {@code KilnOptions.workerTimeout}.
 *
 * <p>Thread-safe.
 */
public final class JoinedWorker extends RemoteHost {

    private final WorkerInfo resources;
    private final String endpoint;
    private final long pid;
    private final String shmDirectory;
    private final String source;

    private JoinedWorker(ControlPlane.Hello hello, WorkerInfo info, Listener listener, ValueCodec codec,
                         Duration timeout) {
        super(hello.name(), listener, codec, timeout);
        this.resources = info;
        this.endpoint = hello.endpoint();
        this.pid = hello.pid();
        this.shmDirectory = hello.shmDirectory();
        this.source = hello.source();
    }

    /**
     * Creates the handle of an admitted worker; for {@link ControlPlane.Joins#admit}, which attaches it to its link.
     *
     * @param hello    what the worker said when it joined
     * @param info     the resources it advertised
     * @param listener told of its events
     * @param codec    the runtime's codec
     * @param timeout  how long creating an actor in it may take
     * @return the worker
     */
    public static JoinedWorker admitted(ControlPlane.Hello hello, WorkerInfo info, Listener listener, ValueCodec codec,
                                        Duration timeout) {
        return new JoinedWorker(hello, info, listener, codec, timeout);
    }

    @Override
    public WorkerInfo resources() {
        return resources;
    }

    /** @return the worker's pid on its own host */
    @Override
    public long pid() {
        return pid;
    }

    @Override
    public String endpoint() {
        return endpoint;
    }

    @Override
    public String shmDirectory() {
        return shmDirectory;
    }

    /**
     * Asks the worker to stop its actors and leave, and waits up to {@code timeout} for it to say it left; then
     * drops it (closing the stream to it).
     */
    @Override
    public void shutdown(Duration timeout) {
        if (death() == null) {
            send(new Message.Shutdown());
            long deadline = System.nanoTime() + timeout.toNanos();
            while (death() == null && System.nanoTime() - deadline < 0) {
                LockSupport.parkNanos(10_000_000);
            }
        }
        drop("worker " + name() + " did not leave within " + timeout + " of the driver's shutdown; it was dropped");
    }

    /** Drops the worker: asks it to leave, closes the stream to it; its actors and graphs are dead. */
    @Override
    public void kill() {
        drop("worker " + name() + " was dropped by the driver");
    }

    private void drop(String why) {
        ControlLink l = link();
        if (death() == null && l != null) {
            l.trySend(new Message.Shutdown());
        }
        died(why);
    }

    @Override
    public String toString() {
        return "worker " + name() + " (joined from " + source + ", host " + resources.hostName() + ")";
    }
}
