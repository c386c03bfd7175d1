package dev.kiln.executor;

import dev.kiln.transport.JoinHandshake;
import dev.kiln.transport.WorkerInfo;
import io.aeron.Aeron;
import io.aeron.ChannelUriStringBuilder;
import io.aeron.ExclusivePublication;
import io.aeron.FragmentAssembler;
import io.aeron.Image;
import io.aeron.driver.MediaDriver;
import io.aeron.driver.ThreadingMode;
import io.aeron.logbuffer.Header;
import org.agrona.DirectBuffer;
import org.agrona.concurrent.BackoffIdleStrategy;

import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.locks.LockSupport;

/**
 * A worker JVM's end of a join ({@link dev.kiln.KilnWorker}): its own embedded Aeron media driver
 * (in its own directory), a UDP endpoint where the driver's control messages and the graphs' UDP
 * channels to it arrive, the join handshake, and the thread that hands the driver's messages to a
 * {@link WorkerRuntime}. It serves one driver: it ends when the driver shuts it down, when the
 * driver's control stream ends or stays silent past the timeout, or when {@link #close} is called.
 *
 * <p>Thread-safe.
 */
public final class WorkerNode implements AutoCloseable {

    private static final System.Logger LOG = System.getLogger("dev.kiln");
    private static final long SEND_TIMEOUT_NS = TimeUnit.SECONDS.toNanos(5);

    /**
     * How to join.
     *
     * @param driver       the driver's {@code host:port} ({@code Kiln.joinEndpoint()})
     * @param secret       the shared join secret
     * @param name         the worker's name, unique among the driver's workers
     * @param listen       {@code address:port} of this worker's endpoint; port 0 picks a free port
     * @param info         what the worker advertises: host name, labels, cores, GPUs
     * @param gpus         the worker's GPUs; closed when the worker stops
     * @param runDirectory where the worker's media driver directory is made
     * @param shmDirectory the shared-memory directory of this worker's host
     * @param timeout      how long joining may take, and how long the driver may stay silent before the
     *                     worker counts it as lost
     */
    public record Settings(String driver, byte[] secret, String name, String listen, WorkerInfo info, Gpus gpus,
                           Path runDirectory, Path shmDirectory, Duration timeout) {
    }

    /** Why a join did not succeed: the driver refused it, could not be reached, or failed to prove the secret. */
    public static final class JoinFailedException extends RuntimeException {
        private static final long serialVersionUID = 1L;
        private final boolean refused;

        JoinFailedException(String message, boolean refused) {
            super(message);
            this.refused = refused;
        }

        /** @return true if the driver answered and refused the worker (a wrong secret, a taken name) */
        public boolean refused() {
            return refused;
        }
    }

    private final Settings settings;
    private final MediaDriver mediaDriver;
    private final Aeron aeron;
    private final Endpoints.Bound bound;
    private final ExclusivePublication toDriver;
    private final WorkerRuntime runtime;
    private final CompletableFuture<String> ended = new CompletableFuture<>();
    private final Thread loop;
    private volatile int driverSession;
    private volatile boolean knowDriver;
    private volatile String lost;
    private volatile boolean stopping;
    private volatile boolean finishing;

    private WorkerNode(Settings settings, MediaDriver mediaDriver, Aeron aeron, Endpoints.Bound bound,
                       ExclusivePublication toDriver) {
        this.settings = settings;
        this.mediaDriver = mediaDriver;
        this.aeron = aeron;
        this.bound = bound;
        this.toDriver = toDriver;
        this.runtime = new WorkerRuntime(settings.name(), settings::info, settings.gpus(), toDriver, aeron);
        this.loop = Thread.ofPlatform().name("kiln-worker-" + settings.name()).unstarted(this::serve);
    }

    /**
     * Starts the worker's media driver, joins the driver and starts serving it.
     *
     * @param settings how to join
     * @return the joined worker, serving the driver on a thread of its own
     * @throws JoinFailedException   if the driver refuses, cannot be reached, or does not prove the secret in time
     * @throws IllegalStateException if the endpoint cannot be bound, or the run directory is a link, another user's
     *                               or open to other users
     */
    public static WorkerNode join(Settings settings) {
        long timeoutNs = settings.timeout().toNanos();
        MediaDriver driver = AeronDirectories.launch(settings.runDirectory(), "KilnWorker.Options.runDirectory (--run-dir)",
                "worker-" + settings.name(), new MediaDriver.Context()
                .threadingMode(ThreadingMode.SHARED)
                .sharedIdleStrategy(new BackoffIdleStrategy(16, 16, 1_000, 100_000))
                .imageLivenessTimeoutNs(timeoutNs)
                .publicationConnectionTimeoutNs(timeoutNs)
                .termBufferSparseFile(true));
        Aeron aeron = null;
        WorkerNode node = null;
        try {
            aeron = Aeron.connect(new Aeron.Context().aeronDirectoryName(driver.aeronDirectoryName()));
            AtomicNode self = new AtomicNode();
            Endpoints.Bound bound = Endpoints.bind(aeron, settings.listen(), ControlPlane.WORKER_STREAM, image -> {
                WorkerNode n = self.node;
                if (n != null) {
                    n.imageGone(image);
                }
            });
            ExclusivePublication toDriver = aeron.addExclusivePublication(new ChannelUriStringBuilder().media("udp")
                    .endpoint(settings.driver()).termLength(ControlPlane.UDP_CONTROL_TERM_LENGTH).build(),
                    ControlPlane.JOIN_STREAM);
            node = new WorkerNode(settings, driver, aeron, bound, toDriver);
            self.node = node;
            node.handshake(System.nanoTime() + timeoutNs);
            node.loop.start();
            return node;
        } catch (RuntimeException e) {
            if (node != null) {
                node.closeResources();
            } else {
                if (aeron != null) {
                    aeron.close();
                }
                driver.close();
            }
            throw e;
        }
    }

    /** Holds the node for the image handler, which Aeron needs before the node exists. */
    private static final class AtomicNode {
        volatile WorkerNode node;
    }

    /** HELLO, then CHALLENGE or REFUSED, RESPONSE, then ACCEPT or REFUSED; READY once the classes are registered. */
    private void handshake(long deadline) {
        String where = "the driver at " + settings.driver();
        while (!toDriver.isConnected()) {
            expire(deadline, "cannot reach " + where + " (no UDP path, or nothing listens there)");
            LockSupport.parkNanos(1_000_000);
        }
        send(Message.write(Message.HELLO, 0).putInt(ControlPlane.PROTOCOL_VERSION).putString(settings.name())
                .putString(bound.endpoint()).putLong(ProcessHandle.current().pid())
                .putString(settings.shmDirectory().toString()), deadline, where);
        JoinHandshake.WorkerSide handshake = new JoinHandshake.WorkerSide(settings.secret(), settings.name(),
                settings.info());
        Message challenge = await(deadline, where, "its challenge");
        driverSession = lastSession;
        knowDriver = true;
        if (challenge.type() != Message.CHALLENGE) {
            throw unexpected(challenge, where);
        }
        send(Message.write(Message.RESPONSE, 0).putBytes(handshake.respond(challenge.getBytes()).encode()), deadline,
                where);
        Message accept = await(deadline, where, "its answer to the worker's proof");
        if (accept.type() != Message.ACCEPT) {
            throw unexpected(accept, where);
        }
        if (!handshake.acceptDriver(accept.getBytes())) {
            giveUp(where + " did not prove it knows the join secret", deadline);
        }
        int n = accept.getInt();
        List<String> classes = new ArrayList<>(n);
        for (int i = 0; i < n; i++) {
            classes.add(accept.getString());
        }
        try {
            runtime.register(classes);
        } catch (ClassNotFoundException | LinkageError e) {
            giveUp("cannot load the driver's registered class " + e.getMessage()
                    + ": put the driver's value classes on the worker's class path", deadline);
        }
        send(Message.write(Message.READY, 0).putLong(ProcessHandle.current().pid()), deadline, where);
        LOG.log(System.Logger.Level.INFO, () -> "worker " + settings.name() + " joined " + where + " from "
                + bound.endpoint());
    }

    private JoinFailedException unexpected(Message m, String where) {
        if (m.type() == Message.REFUSED) {
            return new JoinFailedException(where + " refused worker " + settings.name() + ": " + m.getString(), true);
        }
        return new JoinFailedException(where + " sent message type " + m.type() + " during the join", false);
    }

    private void giveUp(String why, long deadline) {
        Message.write(Message.JOIN_FAILED, 0).putString(why).sendTo(toDriver, Math.max(0, deadline - System.nanoTime()));
        throw new JoinFailedException(why, false);
    }

    private Message received;
    private int lastSession;

    /** Polls the endpoint until a message from the driver arrives (from its session, once known). */
    private Message await(long deadline, String where, String what) {
        received = null;
        FragmentAssembler assembler = new FragmentAssembler(this::onJoinMessage);
        BackoffIdleStrategy idle = new BackoffIdleStrategy(16, 16, 1_000, 1_000_000);
        while (received == null) {
            expire(deadline, where + " did not send " + what);
            idle.idle(bound.subscription().poll(assembler, 1));
        }
        return received;
    }

    private void onJoinMessage(DirectBuffer buffer, int offset, int length, Header header) {
        if (knowDriver && header.sessionId() != driverSession) {
            return; // not the driver that is admitting us
        }
        received = Message.read(buffer, offset, length);
        lastSession = header.sessionId();
    }

    private void expire(long deadline, String why) {
        if (System.nanoTime() - deadline > 0) {
            throw new JoinFailedException(why + " within " + settings.timeout(), false);
        }
    }

    private void send(Message m, long deadline, String where) {
        String failure = m.sendTo(toDriver, Math.max(SEND_TIMEOUT_NS, deadline - System.nanoTime()));
        if (failure != null) {
            throw new JoinFailedException("cannot send to " + where + ": " + failure, false);
        }
    }

    /** The control loop: the driver's messages, in order, until it shuts the worker down or is lost. */
    private void serve() {
        int session = driverSession;
        FragmentAssembler assembler = new FragmentAssembler((buffer, offset, length, header) -> {
            if (header.sessionId() == session) {
                runtime.handle(Message.read(buffer, offset, length));
            }
        });
        BackoffIdleStrategy idle = new BackoffIdleStrategy(64, 16, TimeUnit.MICROSECONDS.toNanos(1),
                TimeUnit.MILLISECONDS.toNanos(1));
        String why = "the driver shut it down";
        try {
            while (runtime.running() && !stopping && lost == null) {
                idle.idle(bound.subscription().poll(assembler, 16));
            }
            if (lost != null) {
                why = lost;
            } else if (stopping) {
                why = "it was closed";
            }
        } catch (RuntimeException | Error e) {
            why = "its control loop failed: " + e;
            LOG.log(System.Logger.Level.ERROR, "worker " + settings.name() + ": control loop failed", e);
        } finally {
            finishing = true;
            runtime.stopAll();
            if (lost == null) {
                // Tell the driver at once; else it would notice only when the stream's end reaches it.
                Message.write(Message.LEFT, 0).putString(why).sendTo(toDriver, TimeUnit.SECONDS.toNanos(1));
            }
            closeResources();
            ended.complete(why);
        }
    }

    /** The driver's control stream went away: it ended, or stayed silent past the timeout. */
    private void imageGone(Image image) {
        // Closing the client at the end reports every image gone: only a loss while serving counts.
        if (knowDriver && image.sessionId() == driverSession && !stopping && !finishing && runtime.running()) {
            String why = image.isEndOfStream() ? "the driver at " + settings.driver() + " closed its control stream"
                    : "the driver at " + settings.driver() + " was silent for " + settings.timeout() + ": lost";
            LOG.log(System.Logger.Level.WARNING, () -> "worker " + settings.name() + ": " + why);
            lost = why;
        }
    }

    /** @return this worker's UDP endpoint, {@code address:port} */
    public String endpoint() {
        return bound.endpoint();
    }

    /** @return the worker's name */
    public String name() {
        return settings.name();
    }

    /**
     * @return completes with why the worker stopped serving (the driver shut it down, was lost, or
     *         {@link #close} was called), once its actors are stopped and its media driver is closed
     */
    public CompletableFuture<String> ended() {
        return ended.thenApply(why -> why);
    }

    /** @return whether the worker stopped, or is stopping, because it lost the driver (not a shutdown or close) */
    public boolean lostDriver() {
        return lost != null;
    }

    /**
     * Leaves: stops the actors and graphs here, closes the stream to the driver (which then counts
     * the worker as gone) and the media driver. Waits up to 10 s for the control loop to finish.
     * Idempotent.
     */
    @Override
    public void close() {
        stopping = true;
        if (loop.isAlive()) {
            try {
                loop.join(10_000);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        } else if (!ended.isDone()) {
            closeResources();
            ended.complete("it was closed");
        }
    }

    private synchronized void closeResources() {
        if (aeron.isClosed()) {
            return;
        }
        aeron.close();
        mediaDriver.close();
        settings.gpus().close();
    }

    @Override
    public String toString() {
        return "worker " + settings.name() + " (" + bound.endpoint() + " -> " + settings.driver() + ")";
    }
}
