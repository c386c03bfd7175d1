package dev.kiln.executor;

import dev.kiln.ControlStats;
import dev.kiln.graph.KilnException;
import dev.kiln.transport.JoinHandshake;
import dev.kiln.transport.Sbe;
import dev.kiln.transport.WorkerInfo;
import io.aeron.Aeron;
import io.aeron.ChannelUriStringBuilder;
import io.aeron.ExclusivePublication;
import io.aeron.Subscription;
import io.aeron.driver.MediaDriver;
import io.aeron.driver.ThreadingMode;
import io.aeron.exceptions.TimeoutException;
import org.agrona.DirectBuffer;
import org.agrona.concurrent.BackoffIdleStrategy;
import org.agrona.concurrent.UnsafeBuffer;

import java.nio.file.Path;
import java.time.Duration;
import java.util.HexFormat;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicReference;
import java.util.concurrent.locks.LockSupport;

/**
 * A worker: the one implementation behind a child JVM ({@link WorkerMain}) and a worker that joins from
 * anywhere ({@link dev.kiln.KilnWorker}). It joins its driver through the join handshake and then serves it:
 * one receive loop hands the driver's authenticated messages to a {@link WorkerRuntime}, one liveness rule
 * watches the driver (a heartbeat after {@value ControlPlane#HEARTBEAT_MS} ms of sending nothing; the driver
 * counts as lost after {@code timeout} of silence that this process was running for), one message set.
 *
 * <p>The two ways differ only in transport: a child JVM is a client of its driver's media driver and talks over
 * {@code aeron:ipc} ({@link Ipc}: its own stream, a secret its driver wrote to its standard input); a worker
 * from elsewhere runs its own media driver, with a UDP endpoint where the driver's control messages and the
 * graphs' UDP channels arrive, and the shared join secret.
 *
 * <p>During the join it answers only CHALLENGEs that repeat its HELLO's random cookie (a few at most), and
 * believes only an ACCEPT whose proof and MAC check out: CHALLENGEs sprayed at its endpoint by someone else are
 * dropped and counted, and do not make the join fail. It serves one driver: it ends when the driver shuts it
 * down or declares it lost, when the driver is silent past the timeout, or when {@link #close} is called, and
 * {@link #exitStatus} says which.
 *
 * <p>Thread-safe.
 */
public final class WorkerNode implements AutoCloseable {

    /** Exit status: the driver shut the worker down, or it was closed. */
    public static final int EXIT_DONE = 0;
    /** Exit status: bad arguments. */
    public static final int EXIT_USAGE = 2;
    /** Exit status: the driver refused the worker (wrong secret, name taken, another protocol version). */
    public static final int EXIT_REFUSED = 3;
    /** Exit status: the driver could not be reached, or the join did not finish in time. */
    public static final int EXIT_JOIN_FAILED = 4;
    /** Exit status: the driver was lost (silent past the timeout, or its control stream or process ended). */
    public static final int EXIT_DRIVER_LOST = 5;
    /** Exit status: the driver declared this worker lost (it was frozen or unreachable past the driver's timeout). */
    public static final int EXIT_DECLARED_LOST = 6;

    private static final System.Logger LOG = System.getLogger("dev.kiln");
    private static final long SEND_TIMEOUT_NS = TimeUnit.SECONDS.toNanos(5);
    /** CHALLENGEs answered at most per join: the driver sends one; a few more are an attacker's, and harmless. */
    private static final int MAX_CHALLENGES = 8;
    private static final long HELLO_AGAIN_NS = TimeUnit.SECONDS.toNanos(1);
    private static final long PAUSE_NS = TimeUnit.MILLISECONDS.toNanos(500);
    /** How long stopping the graphs and actors may take before the worker leaves anyway. */
    private static final long STOP_WAIT_MS = 20_000;

    /**
     * How to join.
     *
     * @param driver       the driver's {@code host:port} ({@code Kiln.joinEndpoint()}); unused with {@code ipc}
     * @param secret       the join secret
     * @param name         the worker's name, unique among the driver's workers
     * @param listen       {@code address:port} of this worker's UDP endpoint; port 0 picks a free port; unused with
     *                     {@code ipc}
     * @param info         what the worker advertises: host name, labels, cores, GPUs
     * @param gpus         the worker's GPUs; closed when the worker stops
     * @param runDirectory where the worker's media driver directory is made; unused with {@code ipc}
     * @param shmDirectory the shared-memory directory of this worker's host
     * @param timeout      how long joining may take, and how long the driver may stay silent before the worker
     *                     counts it as lost
     * @param ipc          for a child JVM: its driver's media driver and its stream; null for a worker over UDP
     */
    public record Settings(String driver, byte[] secret, String name, String listen, WorkerInfo info, Gpus gpus,
                           Path runDirectory, Path shmDirectory, Duration timeout, Ipc ipc) {
    }

    /**
     * A child JVM's transport: its driver's media driver, over {@code aeron:ipc}.
     *
     * @param aeronDirectory the driver's media driver directory
     * @param stream         the IPC stream on which the driver sends this child its control messages
     */
    public record Ipc(String aeronDirectory, int stream) {
    }

    /** Why a join did not succeed: the driver refused it, could not be reached, or failed to prove the secret. */
    public static final class JoinFailedException extends KilnException {
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
    private final String endpoint;
    private final Subscription fromDriver;
    private final ExclusivePublication toDriver;
    private final String where;
    private final ControlCounters counters = new ControlCounters();
    private final PeerWarnings warnings;
    private final CompletableFuture<String> ended = new CompletableFuture<>();
    private final Thread loop;
    /** Sends heartbeats apart from the control loop, which may be busy with a message for a while (a PREPARE). */
    private final Thread heartbeats;
    private volatile Throwable aeronFailure;
    private volatile boolean stopping;
    private volatile int exitStatus = EXIT_DONE;
    private volatile String stop;
    private ControlLink link;
    private WorkerRuntime runtime;
    private long driverTimeoutNs;

    private WorkerNode(Settings settings, MediaDriver mediaDriver, Aeron aeron, String endpoint, Subscription fromDriver,
                       ExclusivePublication toDriver) {
        this.settings = settings;
        this.mediaDriver = mediaDriver;
        this.aeron = aeron;
        this.endpoint = endpoint;
        this.fromDriver = fromDriver;
        this.toDriver = toDriver;
        this.where = settings.ipc() != null ? "the driver (over IPC)" : "the driver at " + settings.driver();
        this.warnings = new PeerWarnings(LOG, "worker " + settings.name());
        this.loop = Thread.ofPlatform().name("kiln-worker-" + settings.name()).unstarted(this::serve);
        this.heartbeats = Thread.ofPlatform().name("kiln-worker-heartbeat-" + settings.name()).daemon(true)
                .unstarted(this::heartbeats);
    }

    /**
     * Joins the driver and starts serving it: over UDP with a media driver of its own, or, with
     * {@link Settings#ipc}, over IPC on the driver's media driver.
     *
     * @param settings how to join
     * @return the joined worker, serving the driver on a thread of its own
     * @throws JoinFailedException   if the driver refuses, cannot be reached, or does not prove the secret in time
     * @throws IllegalStateException if the endpoint cannot be bound, the run directory is a link, another user's
     *                               or open to other users, or the JVM lacks the flag Aeron needs
     */
    public static WorkerNode join(Settings settings) {
        JvmFlags.requireAeron("worker " + settings.name());
        long timeoutNs = settings.timeout().toNanos();
        long aeronTimeoutNs = ControlPlane.aeronTimeoutNs(settings.timeout());
        AtomicReference<WorkerNode> self = new AtomicReference<>();
        Aeron.Context client = new Aeron.Context().driverTimeoutMs(TimeUnit.NANOSECONDS.toMillis(aeronTimeoutNs))
                .errorHandler(e -> {
                    WorkerNode n = self.get();
                    if (n != null) {
                        n.aeronError(e);
                    }
                });
        MediaDriver driver = null;
        Aeron aeron = null;
        WorkerNode node = null;
        try {
            if (settings.ipc() != null) {
                aeron = Aeron.connect(client.aeronDirectoryName(settings.ipc().aeronDirectory()));
                Subscription from = aeron.addSubscription(ControlPlane.IPC, settings.ipc().stream());
                ExclusivePublication to = aeron.addExclusivePublication(ControlPlane.IPC, ControlPlane.JOIN_STREAM);
                node = new WorkerNode(settings, null, aeron, null, from, to);
            } else {
                driver = AeronDirectories.launch(settings.runDirectory(),
                        "KilnWorker.Options.runDirectory (--run-dir)", "worker-" + settings.name(),
                        new MediaDriver.Context()
                        .threadingMode(ThreadingMode.SHARED)
                        .sharedIdleStrategy(new BackoffIdleStrategy(16, 16, 1_000, 100_000))
                        .clientLivenessTimeoutNs(aeronTimeoutNs)
                        .publicationUnblockTimeoutNs(aeronTimeoutNs + TimeUnit.SECONDS.toNanos(5))
                        .imageLivenessTimeoutNs(aeronTimeoutNs)
                        .publicationConnectionTimeoutNs(aeronTimeoutNs)
                        .termBufferSparseFile(true));
                aeron = Aeron.connect(client.aeronDirectoryName(driver.aeronDirectoryName()));
                Endpoints.Bound bound = Endpoints.bind(aeron, settings.listen(), ControlPlane.WORKER_STREAM,
                        image -> { });
                ExclusivePublication to = aeron.addExclusivePublication(new ChannelUriStringBuilder().media("udp")
                        .endpoint(settings.driver()).termLength(ControlPlane.UDP_CONTROL_TERM_LENGTH).sparse(true)
                        .build(), ControlPlane.JOIN_STREAM);
                node = new WorkerNode(settings, driver, aeron, bound.endpoint(), bound.subscription(), to);
            }
            self.set(node);
            node.handshake(System.nanoTime() + timeoutNs);
            node.loop.start();
            node.heartbeats.start();
            return node;
        } catch (RuntimeException e) {
            if (node != null) {
                node.closeResources();
            } else {
                if (aeron != null) {
                    aeron.close();
                }
                if (driver != null) {
                    driver.close();
                }
            }
            throw e;
        }
    }

    /** Aeron's client reports an error; a fatal one (it timed out after a pause, its driver is gone) ends serving. */
    private void aeronError(Throwable e) {
        if (e instanceof TimeoutException) {
            aeronFailure = e;
        } else {
            LOG.log(System.Logger.Level.WARNING, () -> "worker " + settings.name() + ": Aeron: " + e);
        }
    }

    /** The state of a join in progress: the answers this worker gave, and the outcome. */
    private final class Join {
        final byte[] cookie;
        final byte[] hello;
        final Map<String, JoinHandshake.WorkerSide> answered = new LinkedHashMap<>();
        Message.Accept accepted;
        String refused;

        Join(byte[] cookie, byte[] hello) {
            this.cookie = cookie;
            this.hello = hello;
        }
    }

    /** HELLO; CHALLENGE (or REFUSED); RESPONSE; ACCEPT with the driver's proof; READY once the classes are registered. */
    private void handshake(long deadline) {
        while (!toDriver.isConnected()) {
            expire(deadline, "cannot reach " + where + " (no path, or nothing listens there)");
            LockSupport.parkNanos(1_000_000);
        }
        byte[] cookie = JoinHandshake.nonce();
        byte[] hello = ControlCodec.encode(new Message.Hello(ControlPlane.PROTOCOL_VERSION,
                ProcessHandle.current().pid(), cookie, settings.name(), endpoint != null ? endpoint : "",
                settings.shmDirectory().toString()));
        Join j = new Join(cookie, hello);
        offerRaw(hello, deadline);
        long lastHello = System.nanoTime();
        BoundedAssembler assembler = assembler((b, o, l, h) -> onJoinFrame(j, b, o, l));
        BackoffIdleStrategy idle = new BackoffIdleStrategy(16, 16, 1_000, 1_000_000);
        while (j.accepted == null) {
            if (j.refused != null) {
                throw new JoinFailedException(where + " refused worker " + settings.name() + ": " + j.refused, true);
            }
            expire(deadline, where + " did not accept the worker");
            idle.idle(fromDriver.poll(assembler, 16));
            if (j.answered.isEmpty() && System.nanoTime() - lastHello > HELLO_AGAIN_NS) {
                // The driver may have been busy, or delayed this address after a failed join: say it again.
                offerRaw(hello, deadline);
                lastHello = System.nanoTime();
            }
        }
        Message.Accept accept = j.accepted;
        driverTimeoutNs = settings.ipc() != null ? TimeUnit.MILLISECONDS.toNanos(accept.timeoutMs())
                : settings.timeout().toNanos();
        runtime = new WorkerRuntime(settings.name(), settings::info, settings.gpus(), link, aeron, accept.maxCallBytes());
        try {
            runtime.register(accept.classes());
        } catch (ClassNotFoundException | LinkageError e) {
            String why = "cannot load the driver's registered class " + e.getMessage()
                    + ": put the driver's value classes on the worker's class path";
            link.send(new Message.JoinFailed(why), SEND_TIMEOUT_NS);
            throw new JoinFailedException(why, false);
        }
        String failure = link.send(new Message.Ready(ProcessHandle.current().pid()), SEND_TIMEOUT_NS);
        if (failure != null) {
            throw new JoinFailedException("cannot send to " + where + ": " + failure, false);
        }
        LOG.log(System.Logger.Level.INFO, () -> "worker " + settings.name() + " joined " + where
                + (endpoint != null ? " from " + endpoint : ""));
    }

    /**
     * The assembler of the driver's stream, which anyone who reaches the worker's endpoint can also write to: messages
     * up to a control frame, at most 16 senders assembling at once, each sender's buffer freed after each message.
     */
    private BoundedAssembler assembler(io.aeron.logbuffer.FragmentHandler handler) {
        return new BoundedAssembler(handler, session -> false, ControlLink.MAX_FRAME, ControlLink.MAX_FRAME, 16,
                session -> {
                    counters.malformed();
                    warnings.warn(() -> "dropped a message larger than a control frame, or sent while 16 others were"
                            + " being assembled (session " + session + ")");
                });
    }

    /** One frame during the join, from whichever sender: only what proves itself counts. */
    private void onJoinFrame(Join j, DirectBuffer buffer, int offset, int length) {
        int template;
        try {
            template = Sbe.templateId(buffer, offset, length);
        } catch (IllegalArgumentException e) {
            counters.malformed();
            warnings.warn(() -> "dropped a malformed message while joining: " + LogText.quote(e.getMessage()));
            return;
        }
        if (ControlCodec.authenticated(template)) {
            onAccept(j, buffer, offset, length);
            return;
        }
        byte[] raw = new byte[length];
        buffer.getBytes(offset, raw);
        Message m;
        try {
            m = ControlCodec.decode(new UnsafeBuffer(raw), length);
        } catch (IllegalArgumentException e) {
            counters.malformed();
            warnings.warn(() -> "dropped a malformed message while joining: " + LogText.quote(e.getMessage()));
            return;
        }
        switch (m) {
            case Message.Challenge c when java.security.MessageDigest.isEqual(c.cookie(), j.cookie) -> {
                String key = HexFormat.of().formatHex(c.driverNonce());
                if (j.answered.containsKey(key) || j.answered.size() >= MAX_CHALLENGES) {
                    return;
                }
                JoinHandshake.WorkerSide side = new JoinHandshake.WorkerSide(settings.secret(), j.hello,
                        settings.name(), settings.info());
                j.answered.put(key, side);
                if (j.answered.size() > 1) {
                    counters.forged(); // one of them was not the driver's
                }
                byte[] response = ControlCodec.encode(new Message.JoinResponse(side.respond(c.driverNonce())));
                toDriver.offer(new UnsafeBuffer(response));
            }
            case Message.Refused r when java.security.MessageDigest.isEqual(r.cookie(), j.cookie) -> j.refused = r.reason();
            default -> {
                counters.forged();
                warnings.warn(() -> "dropped a " + m.getClass().getSimpleName() + " while joining that does not answer"
                        + " this worker's HELLO (a forged message)");
            }
        }
    }

    /** An authenticated frame while joining: only an ACCEPT whose proof and MAC check out ends the join. */
    private void onAccept(Join j, DirectBuffer buffer, int offset, int length) {
        Message m;
        try {
            int body = length - ControlLink.MAC_BYTES;
            byte[] raw = new byte[Math.max(0, body)];
            buffer.getBytes(offset, raw);
            m = ControlCodec.decode(new UnsafeBuffer(raw), raw.length);
        } catch (IllegalArgumentException e) {
            counters.malformed();
            warnings.warn(() -> "dropped a malformed message while joining: " + LogText.quote(e.getMessage()));
            return;
        }
        JoinHandshake.WorkerSide side = m instanceof Message.Accept a
                ? j.answered.get(HexFormat.of().formatHex(a.driverNonce())) : null;
        if (side == null || !side.acceptDriver(((Message.Accept) m).proof())) {
            counters.forged();
            warnings.warn(() -> "dropped a " + m.getClass().getSimpleName() + " while joining that does not prove it "
                    + "comes from the driver");
            return;
        }
        ControlLink candidate = new ControlLink(toDriver, side.keys(), ((Message.Accept) m).maxCallBytes(), counters,
                warnings, where);
        if (candidate.receive(buffer, offset, length) instanceof Message.Accept a) {
            link = candidate;
            j.accepted = a;
        }
    }

    private void offerRaw(byte[] frame, long deadline) {
        UnsafeBuffer b = new UnsafeBuffer(frame);
        while (toDriver.offer(b) < 0) {
            expire(deadline, "cannot send to " + where);
            LockSupport.parkNanos(100_000);
        }
    }

    private void expire(long deadline, String why) {
        if (System.nanoTime() - deadline > 0) {
            throw new JoinFailedException(why + " within " + settings.timeout(), false);
        }
    }

    /** The control loop: the driver's messages, in order, until it shuts the worker down or is lost. */
    private void serve() {
        BoundedAssembler assembler = assembler((buffer, offset, length, header) -> {
            Message m = link.receive(buffer, offset, length);
            if (m != null) {
                onMessage(m);
            }
        });
        BackoffIdleStrategy idle = new BackoffIdleStrategy(64, 16, TimeUnit.MICROSECONDS.toNanos(1),
                TimeUnit.MILLISECONDS.toNanos(1));
        long lastLoop = System.nanoTime();
        try {
            while (stop == null) {
                long now = System.nanoTime();
                if (now - lastLoop > PAUSE_NS) {
                    // This process did not run (a freeze, a long GC) since the last iteration ended: the driver's
                    // silence then is not its. Time spent handling messages is not a pause: lastLoop is taken after.
                    link.forgive(now - lastLoop);
                }
                int work = fromDriver.poll(assembler, 16);
                lastLoop = System.nanoTime();
                if (lastLoop - link.lastHeardNs() > driverTimeoutNs) {
                    end(EXIT_DRIVER_LOST, where + " was silent for " + Duration.ofNanos(driverTimeoutNs) + ": lost");
                }
                Throwable failure = aeronFailure;
                if (failure != null) {
                    end(EXIT_DRIVER_LOST, "its control plane failed (" + failure.getMessage() + "): lost " + where);
                }
                if (stopping) {
                    end(EXIT_DONE, "it was closed");
                }
                idle.idle(work);
            }
        } catch (RuntimeException | Error e) {
            end(EXIT_DRIVER_LOST, "its control loop failed: " + e);
            LOG.log(System.Logger.Level.ERROR, "worker " + settings.name() + ": control loop failed", e);
        } finally {
            if (exitStatus != EXIT_DONE) {
                LOG.log(System.Logger.Level.WARNING, () -> "worker " + settings.name() + ": " + stop);
            }
            stopActors();
            if (exitStatus == EXIT_DONE) {
                // Tell the driver at once; else it would notice only when the worker timeout passed.
                link.send(new Message.Left(stop), TimeUnit.SECONDS.toNanos(1));
            }
            closeResources();
            ended.complete(stop);
        }
    }

    /** Sends a heartbeat whenever nothing was sent for {@link ControlPlane#HEARTBEAT_MS}, until the loop ends. */
    private void heartbeats() {
        long heartbeatNs = TimeUnit.MILLISECONDS.toNanos(ControlPlane.HEARTBEAT_MS);
        while (stop == null && loop.isAlive()) {
            if (System.nanoTime() - link.lastSentNs() >= heartbeatNs) {
                link.trySend(counters.heartbeat());
            }
            LockSupport.parkNanos(heartbeatNs / 5);
        }
    }

    /** Stops the graphs and actors here; a worker leaves even when one of them does not stop in time. */
    private void stopActors() {
        Thread stopper = Thread.ofPlatform().name("kiln-worker-stop-" + settings.name()).daemon(true)
                .start(runtime::stopAll);
        try {
            stopper.join(STOP_WAIT_MS);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
        if (stopper.isAlive()) {
            StackTraceElement[] where = stopper.getStackTrace();
            LOG.log(System.Logger.Level.WARNING, () -> "worker " + settings.name() + ": its graphs and actors did not "
                    + "stop within " + STOP_WAIT_MS / 1000 + " s; it leaves anyway (stuck at "
                    + java.util.Arrays.toString(where) + ")");
        }
    }

    private void onMessage(Message m) {
        switch (m) {
            case Message.Heartbeat h -> {
                // liveness only: the link noted when it arrived
            }
            case Message.Shutdown s -> end(EXIT_DONE, "the driver shut it down");
            case Message.Lost l -> end(EXIT_DECLARED_LOST, "the driver declared this worker lost: " + l.reason()
                    + "; it stopped its actors and left");
            default -> runtime.handle(m);
        }
    }

    private void end(int status, String why) {
        if (stop == null) {
            exitStatus = status;
            stop = why;
        }
    }

    /** @return this worker's UDP endpoint, {@code address:port}, or null for a child JVM over IPC */
    public String endpoint() {
        return endpoint;
    }

    /** @return the worker's name */
    public String name() {
        return settings.name();
    }

    /** @return the control messages this worker dropped */
    public ControlStats stats() {
        return counters.snapshot();
    }

    /**
     * @return completes with why the worker stopped serving (the driver shut it down or declared it lost, the
     *         driver was lost, or {@link #close} was called), once its actors are stopped and its resources closed
     */
    public CompletableFuture<String> ended() {
        return ended.thenApply(why -> why);
    }

    /**
     * @return the exit status a process that runs only this worker should end with: {@link #EXIT_DONE},
     *         {@link #EXIT_DRIVER_LOST} or {@link #EXIT_DECLARED_LOST}; {@link #EXIT_DONE} while it serves
     */
    public int exitStatus() {
        return exitStatus;
    }

    /** @return whether the worker stopped, or is stopping, because it lost the driver or was declared lost */
    public boolean lostDriver() {
        return exitStatus == EXIT_DRIVER_LOST || exitStatus == EXIT_DECLARED_LOST;
    }

    /**
     * Leaves: stops the actors and graphs here, tells the driver, and closes the streams (and the media driver of
     * a worker over UDP). Waits up to 10 s for the control loop to finish. Idempotent.
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
        if (mediaDriver != null) {
            mediaDriver.close();
        }
        settings.gpus().close();
    }

    @Override
    public String toString() {
        return "worker " + settings.name() + " (" + (endpoint != null ? endpoint : "IPC") + " -> " + where + ")";
    }
}
