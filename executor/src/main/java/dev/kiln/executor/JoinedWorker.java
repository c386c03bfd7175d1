package dev.kiln.executor;

import dev.kiln.transport.ValueCodec;
import dev.kiln.transport.WorkerInfo;
import io.aeron.Publication;

import java.time.Duration;
import java.util.concurrent.locks.LockSupport;

/**
 * The driver's handle on a worker that joined over Aeron UDP ({@link dev.kiln.KilnWorker}): someone
 * else started its JVM, on this host or another. Control messages go to the worker's endpoint; its
 * messages arrive on the driver's join stream and reach {@link #onMessage} through the
 * {@link ControlPlane}, which also tells {@link #lost} when the worker's stream ends or stays silent
 * past {@code KilnOptions.workerTimeout}.
 *
 * <p>Thread-safe.
 */
public final class JoinedWorker extends RemoteHost {

    private final WorkerInfo resources;
    private final String endpoint;
    private final long pid;
    private final String shmDirectory;
    private final String source;
    private final Publication link;
    private volatile ControlPlane plane;

    /**
     * @param hello    what the worker said when it joined
     * @param info     the resources it advertised
     * @param link     the control stream to it
     * @param listener told of its events
     * @param codec    the runtime's codec
     * @param timeout  how long creating an actor in it may take
     */
    JoinedWorker(ControlPlane.Hello hello, WorkerInfo info, Publication link, Listener listener, ValueCodec codec,
                 Duration timeout) {
        super(hello.name(), listener, codec, timeout);
        this.resources = info;
        this.endpoint = hello.endpoint();
        this.pid = hello.pid();
        this.shmDirectory = hello.shmDirectory();
        this.source = hello.source();
        this.link = link;
    }

    /**
     * Creates the handle of an admitted worker; for {@link ControlPlane.Joins#admit}.
     *
     * @param hello    what the worker said when it joined
     * @param info     the resources it advertised
     * @param link     the control stream to it
     * @param listener told of its events
     * @param codec    the runtime's codec
     * @param timeout  how long creating an actor in it may take
     * @return the worker
     */
    public static JoinedWorker admitted(ControlPlane.Hello hello, WorkerInfo info, Publication link, Listener listener,
                                        ValueCodec codec, Duration timeout) {
        return new JoinedWorker(hello, info, link, listener, codec, timeout);
    }

    /** @param controlPlane the control plane that receives this worker's messages */
    void attach(ControlPlane controlPlane) {
        this.plane = controlPlane;
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

    @Override
    Publication toWorker() {
        return link;
    }

    /**
     * The worker's stream to the driver ended or went silent: it is dead.
     *
     * @param why what happened, naming the worker
     */
    void lost(String why) {
        died(why);
    }

    /** The worker says it stopped its actors and leaves: it is gone at once, without waiting for its stream to end. */
    @Override
    void onOtherMessage(Message m) {
        if (m.type() != Message.LEFT) {
            super.onOtherMessage(m);
        }
        died("worker " + name() + " left: " + m.getString());
    }

    /** A malformed message from the worker: it can no longer be trusted, so it is dropped. */
    void protocolError(RuntimeException e) {
        kill("worker " + name() + " sent a malformed control message (" + e.getMessage() + "); it was dropped");
    }

    @Override
    void onDeath(String why) {
        ControlPlane p = plane;
        if (p != null) {
            p.remove(this);
        }
    }

    /**
     * Asks the worker to stop its actors and leave, and waits up to {@code timeout} for its stream to
     * end; then drops it (closing the stream to it, which makes it leave too).
     */
    @Override
    public void shutdown(Duration timeout) {
        if (death() == null) {
            send(Message.write(Message.SHUTDOWN, 0));
            long deadline = System.nanoTime() + timeout.toNanos();
            while (death() == null && System.nanoTime() - deadline < 0) {
                LockSupport.parkNanos(10_000_000);
            }
        }
        kill("worker " + name() + " did not leave within " + timeout + " of the driver's shutdown; it was dropped");
    }

    /** Drops the worker: asks it to leave, closes the stream to it; its actors and graphs are dead. */
    @Override
    public void kill() {
        kill("worker " + name() + " was dropped by the driver");
    }

    private void kill(String why) {
        if (death() == null) {
            Message.write(Message.SHUTDOWN, 0).sendTo(link, 0);
        }
        died(why);
        link.close();
    }

    @Override
    public String toString() {
        return "worker " + name() + " (joined from " + source + ", host " + resources.hostName() + ")";
    }
}
