package dev.kiln.executor;

import dev.kiln.transport.JoinHandshake;
import io.aeron.Aeron;
import io.aeron.ChannelUriStringBuilder;
import io.aeron.ExclusivePublication;
import io.aeron.FragmentAssembler;
import io.aeron.Image;
import io.aeron.Publication;
import io.aeron.Subscription;
import io.aeron.driver.MediaDriver;
import io.aeron.driver.ThreadingMode;
import io.aeron.logbuffer.Header;
import org.agrona.DirectBuffer;
import org.agrona.concurrent.BackoffIdleStrategy;
import org.agrona.concurrent.SleepingMillisIdleStrategy;

import java.io.UncheckedIOException;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.Iterator;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicReference;

/**
 * The driver's side of the control plane to its worker JVMs: an embedded Aeron media driver
 * (its directory under the Kiln run directory), an Aeron client, and one thread that receives
 * every worker's messages. Child JVMs are clients of this media driver and talk over
 * {@code aeron:ipc}, one stream pair per worker. When the runtime accepts workers from other
 * hosts ({@link Listen}), the media driver also listens on one UDP endpoint: workers join there
 * ({@link JoinHandshake}: a challenge, the worker's HMAC over it, the driver's proof), send their
 * control messages there, and the graphs' Aeron UDP channels to this host arrive there. Only
 * control messages travel on the control streams (creating actors, dynamic calls, shipping plans,
 * starting and stopping graphs); executions touch only the graphs' channels.
 *
 * <p>Started with the runtime when it accepts workers, else on the first child JVM; closed with
 * the runtime. Thread-safe.
 */
public final class ControlPlane implements AutoCloseable {

    /** The Aeron channel of every child JVM's control stream. */
    public static final String CHANNEL = "aeron:ipc";
    /** The stream, on the driver's UDP endpoint, on which workers join and then send their control messages. */
    public static final int JOIN_STREAM = 10;
    /** The stream, on a joined worker's UDP endpoint, on which the driver sends it control messages. */
    public static final int WORKER_STREAM = 11;
    /** The version of the join protocol; a worker of another version is refused with both versions named. */
    public static final int PROTOCOL_VERSION = 1;
    /** Room for a dynamic call's arguments or result: an IPC message may be an eighth of a term. */
    private static final int TERM_LENGTH = 64 * 1024 * 1024;
    /** UDP control terms: a message may be an eighth, 2 MiB. */
    static final int UDP_CONTROL_TERM_LENGTH = 16 * 1024 * 1024;
    /** A join that has not finished in this time is dropped. */
    private static final long JOIN_TIMEOUT_NS = TimeUnit.SECONDS.toNanos(30);
    /** At most this many joins in progress at once: a flood of hellos cannot exhaust the driver. */
    private static final int MAX_PENDING_JOINS = 64;
    private static final System.Logger LOG = System.getLogger("dev.kiln");

    /**
     * How the runtime accepts workers from other hosts.
     *
     * @param endpoint      {@code host:port} to listen on; port 0 picks a free port
     * @param secret        the shared join secret, at least {@value JoinHandshake#MIN_SECRET_BYTES} bytes
     * @param workerTimeout how long a joined worker may stay silent before it counts as lost (the media
     *                      driver's image liveness timeout)
     * @param joins         decides on and hears of joining workers
     */
    public record Listen(String endpoint, byte[] secret, Duration workerTimeout, Joins joins) {
    }

    /** Decides whether a worker that proved the secret may join, and hears when it is ready. */
    public interface Joins {
        /**
         * Admits a worker that proved the secret and registered the classes. Called on the control plane's thread.
         *
         * @param hello what the worker said about itself
         * @param info  the resources it advertised, authenticated by the handshake
         * @param link  the control stream to it
         * @return the worker
         * @throws IllegalStateException saying why it cannot join (its name is taken, the runtime is closed)
         */
        JoinedWorker admit(Hello hello, dev.kiln.transport.WorkerInfo info, Publication link);

        /**
         * @param hello a worker's hello
         * @return why such a worker cannot join (its name is taken), or null
         */
        String refusal(Hello hello);

        /** @return the class names workers must register before they are ready */
        List<String> classes();
    }

    /**
     * What a joining worker says first.
     *
     * @param name         the worker's name
     * @param endpoint     the {@code host:port} where it receives UDP
     * @param pid          its process id
     * @param shmDirectory its shared-memory directory
     * @param source       the address its hello came from, for logs
     */
    public record Hello(String name, String endpoint, long pid, String shmDirectory, String source) {
    }

    private final Path directory;
    private final MediaDriver driver;
    private final Aeron aeron;
    private final String endpoint;
    private final Subscription joinSubscription;
    private final Listen listen;
    private final List<WorkerProcess> workers = new CopyOnWriteArrayList<>();
    /** Joins in progress and joined workers, by the session id of their stream to us; control thread only. */
    private final Map<Integer, PendingJoin> pending = new HashMap<>();
    private final Map<Integer, JoinedWorker> joined = new ConcurrentHashMap<>();
    private final FragmentAssembler joinAssembler;
    private final Thread receiver;
    private volatile boolean closed;
    private int nextIndex;

    private ControlPlane(Path directory, MediaDriver driver, Aeron aeron, String endpoint, Subscription join,
                         Listen listen) {
        this.directory = directory;
        this.driver = driver;
        this.aeron = aeron;
        this.endpoint = endpoint;
        this.joinSubscription = join;
        this.listen = listen;
        this.joinAssembler = new FragmentAssembler(this::onJoinStream);
        this.receiver = Thread.ofPlatform().name("kiln-control").daemon(true).unstarted(this::receive);
        receiver.start();
    }

    /**
     * Starts the media driver and connects to it; with {@code listen}, also listens for workers.
     *
     * @param runDirectory the Kiln run directory; the media driver's directory is made inside it
     * @param name         the runtime's name, unique in this JVM
     * @param listen       how to accept workers from other hosts, or null to accept none
     * @return the control plane
     * @throws UncheckedIOException  if the directory cannot be made
     * @throws IllegalStateException if the run directory is a link, another user's or open to other users
     * @throws IllegalStateException if the endpoint cannot be bound
     */
    public static ControlPlane start(Path runDirectory, String name, Listen listen) {
        MediaDriver.Context context = new MediaDriver.Context()
                .threadingMode(ThreadingMode.SHARED)
                .ipcTermBufferLength(TERM_LENGTH)
                .termBufferSparseFile(true);
        if (listen == null) {
            // Control traffic only: the driver's conductor need not react within microseconds.
            context.sharedIdleStrategy(new SleepingMillisIdleStrategy(1));
        } else {
            // Data channels from other hosts arrive here too: park briefly, not for a whole millisecond.
            context.sharedIdleStrategy(new BackoffIdleStrategy(16, 16, 1_000, 100_000))
                    .imageLivenessTimeoutNs(listen.workerTimeout().toNanos())
                    .publicationConnectionTimeoutNs(listen.workerTimeout().toNanos());
        }
        MediaDriver driver = AeronDirectories.launch(runDirectory, "KilnOptions.runDirectory", name, context);
        Path dir = Path.of(driver.aeronDirectoryName());
        Aeron aeron = null;
        try {
            aeron = Aeron.connect(new Aeron.Context().aeronDirectoryName(driver.aeronDirectoryName()));
            if (listen == null) {
                return new ControlPlane(dir, driver, aeron, null, null, null);
            }
            AtomicReference<ControlPlane> self = new AtomicReference<>();
            Endpoints.Bound bound = Endpoints.bind(aeron, listen.endpoint(), JOIN_STREAM, image -> {
                ControlPlane plane = self.get();
                if (plane != null) {
                    plane.imageGone(image);
                }
            });
            ControlPlane plane = new ControlPlane(dir, driver, aeron, bound.endpoint(), bound.subscription(), listen);
            self.set(plane);
            return plane;
        } catch (RuntimeException e) {
            if (aeron != null) {
                aeron.close();
            }
            driver.close();
            throw e;
        }
    }

    /** @return the media driver's directory, which child JVMs connect to */
    public Path directory() {
        return Path.of(driver.aeronDirectoryName());
    }

    /** @return the {@code host:port} where workers join and UDP channels to this host arrive, or null if none */
    public String endpoint() {
        return endpoint;
    }

    /** @return the Aeron client of the driver's media driver (for the driver's UDP channels) */
    public Aeron aeron() {
        return aeron;
    }

    /**
     * Reserves the stream pair of a new child JVM.
     *
     * @return its index: it reads stream {@code 100 + 2 * index} and writes {@code 101 + 2 * index}
     */
    synchronized int reserveIndex() {
        if (closed) {
            throw new IllegalStateException("the control plane is closed");
        }
        return nextIndex++;
    }

    /** @param worker a child JVM whose streams are open, to poll from now on */
    void add(WorkerProcess worker) {
        workers.add(worker);
    }

    /** @param worker a child JVM that ended */
    void remove(WorkerProcess worker) {
        workers.remove(worker);
    }

    /** @param worker a joined worker that left or was lost; its stream to us is forgotten */
    void remove(JoinedWorker worker) {
        joined.values().remove(worker);
    }

    private void receive() {
        // Sleeps up to 1 ms when idle: a dynamic call to a worker actor waits at most that for its reply.
        BackoffIdleStrategy idle = new BackoffIdleStrategy(64, 16, TimeUnit.MICROSECONDS.toNanos(1),
                TimeUnit.MILLISECONDS.toNanos(1));
        while (!closed) {
            int work = 0;
            for (WorkerProcess w : workers) {
                try {
                    work += w.poll();
                } catch (RuntimeException e) {
                    w.protocolError(e);
                }
            }
            if (joinSubscription != null) {
                work += joinSubscription.poll(joinAssembler, 16);
                work += servicePendingJoins();
            }
            idle.idle(work);
        }
    }

    /** A message on the join stream: a join step, or a joined worker's control message. */
    private void onJoinStream(DirectBuffer buffer, int offset, int length, Header header) {
        int session = header.sessionId();
        JoinedWorker w = joined.get(session);
        Message m;
        try {
            m = Message.read(buffer, offset, length);
        } catch (RuntimeException e) {
            dropJoin(session, "a malformed message (" + e.getMessage() + ")");
            return;
        }
        if (w != null) {
            try {
                w.onMessage(m);
            } catch (RuntimeException e) {
                w.protocolError(e);
            }
            return;
        }
        try {
            switch (m.type()) {
                case Message.HELLO -> onHello(session, m, sourceOf(session));
                case Message.RESPONSE -> onResponse(session, m);
                case Message.READY -> onReady(session);
                case Message.JOIN_FAILED -> {
                    PendingJoin p = pending.remove(session);
                    if (p != null) {
                        LOG.log(System.Logger.Level.WARNING, () -> "worker " + p.hello.name() + " from "
                                + p.hello.source() + " gave up joining: " + m.getString());
                        p.link.close();
                    }
                }
                default -> dropJoin(session, "control message type " + m.type() + " before it joined");
            }
        } catch (RuntimeException e) {
            dropJoin(session, "a malformed join message (" + e.getMessage() + ")");
        }
    }

    private String sourceOf(int session) {
        Image image = joinSubscription.imageBySessionId(session);
        return image != null ? image.sourceIdentity() : "an unknown address";
    }

    private void onHello(int session, Message m, String source) {
        int version = m.getInt();
        Hello hello = new Hello(m.getString(), m.getString(), m.getLong(), m.getString(), source);
        if (pending.containsKey(session)) {
            return; // a repeated hello: the first one is being answered
        }
        if (pending.size() >= MAX_PENDING_JOINS) {
            LOG.log(System.Logger.Level.WARNING, () -> "ignored a join from " + source + ": " + MAX_PENDING_JOINS
                    + " joins are in progress already");
            return;
        }
        ExclusivePublication link;
        try {
            link = aeron.addExclusivePublication(new ChannelUriStringBuilder().media("udp").endpoint(hello.endpoint())
                    .termLength(UDP_CONTROL_TERM_LENGTH).build(), WORKER_STREAM);
        } catch (RuntimeException e) {
            LOG.log(System.Logger.Level.WARNING, () -> "ignored a join from " + source + ": cannot reach its endpoint '"
                    + hello.endpoint() + "': " + e.getMessage());
            return;
        }
        PendingJoin p = new PendingJoin(hello, link, new JoinHandshake.DriverSide(listen.secret()),
                System.nanoTime() + JOIN_TIMEOUT_NS);
        if (version != PROTOCOL_VERSION) {
            p.refuse = "it speaks join protocol " + version + ", this driver " + PROTOCOL_VERSION
                    + ": run the same Kiln version on the driver and its workers";
        } else {
            p.refuse = listen.joins().refusal(hello);
        }
        pending.put(session, p);
    }

    private void onResponse(int session, Message m) {
        PendingJoin p = pending.get(session);
        if (p == null || !p.challenged || p.response != null) {
            dropJoin(session, "a join response out of turn");
            return;
        }
        JoinHandshake.Response response = JoinHandshake.Response.decode(m.getBytes());
        p.response = response;
        if (!response.workerName().equals(p.hello.name()) || !p.handshake.accept(response)) {
            LOG.log(System.Logger.Level.WARNING, () -> "refused worker " + p.hello.name() + " from " + p.hello.source()
                    + ": it does not know the join secret");
            refuse(session, p, "the join secret does not match the driver's");
            return;
        }
        String refusal = listen.joins().refusal(p.hello);
        if (refusal != null) {
            refuse(session, p, refusal);
            return;
        }
        Message accept = Message.write(Message.ACCEPT, 0).putBytes(p.handshake.proof());
        List<String> classes = listen.joins().classes();
        accept.putInt(classes.size());
        classes.forEach(accept::putString);
        String failure = accept.sendTo(p.link, TimeUnit.SECONDS.toNanos(1));
        if (failure != null) {
            dropJoin(session, "cannot send it the driver's proof: " + failure);
        }
        // Admitted once it registered the classes and said READY.
    }

    private void onReady(int session) {
        PendingJoin p = pending.get(session);
        if (p == null || p.response == null) {
            dropJoin(session, "READY before it proved the secret");
            return;
        }
        pending.remove(session);
        JoinedWorker w;
        try {
            w = listen.joins().admit(p.hello, p.response.info(), p.link);
        } catch (IllegalStateException e) {
            refuse(session, p, e.getMessage());
            return;
        }
        joined.put(session, w);
        w.attach(this);
        LOG.log(System.Logger.Level.INFO, () -> "worker " + w.name() + " joined from " + p.hello.source() + ": "
                + w.resources());
        if (joinSubscription.imageBySessionId(session) == null) {
            imageGone(session, false, p.hello.source()); // it went away while it was being admitted
        }
    }

    private void refuse(int session, PendingJoin p, String why) {
        Message.write(Message.REFUSED, 0).putString(why).sendTo(p.link, TimeUnit.SECONDS.toNanos(1));
        pending.remove(session);
        p.link.close();
    }

    private void dropJoin(int session, String why) {
        PendingJoin p = pending.remove(session);
        LOG.log(System.Logger.Level.WARNING, () -> "dropped a join from " + (p != null ? p.hello.source()
                : sourceOf(session)) + ": " + why);
        if (p != null) {
            p.link.close();
        }
    }

    /** Sends challenges once their links connect, refuses what must be refused, expires stale joins. */
    private int servicePendingJoins() {
        int work = 0;
        long now = System.nanoTime();
        for (Iterator<Map.Entry<Integer, PendingJoin>> it = pending.entrySet().iterator(); it.hasNext(); ) {
            Map.Entry<Integer, PendingJoin> e = it.next();
            PendingJoin p = e.getValue();
            if (now - p.deadline > 0) {
                it.remove();
                p.link.close();
                LOG.log(System.Logger.Level.WARNING, () -> "dropped the join of " + p.hello.name() + " from "
                        + p.hello.source() + ": it did not finish within " + JOIN_TIMEOUT_NS / 1_000_000_000 + " s");
                work++;
            } else if (!p.challenged && p.link.isConnected()) {
                Message m = p.refuse != null ? Message.write(Message.REFUSED, 0).putString(p.refuse)
                        : Message.write(Message.CHALLENGE, 0).putBytes(p.handshake.challenge());
                if (m.sendTo(p.link, 0) == null) {
                    p.challenged = true;
                    if (p.refuse != null) {
                        LOG.log(System.Logger.Level.WARNING, () -> "refused worker " + p.hello.name() + " from "
                                + p.hello.source() + ": " + p.refuse);
                        it.remove();
                        p.link.close();
                    }
                }
                work++;
            }
        }
        return work;
    }

    /** The join subscription's image handler (the Aeron client's thread): a joined worker whose stream goes away is lost. */
    private void imageGone(Image image) {
        imageGone(image.sessionId(), image.isEndOfStream(), image.sourceIdentity());
    }

    private void imageGone(int session, boolean endOfStream, String source) {
        JoinedWorker w = joined.remove(session);
        if (w != null) {
            w.lost(endOfStream ? "worker " + w.name() + " left (its control stream from " + source + " ended)"
                    : "worker " + w.name() + " (host " + w.hostName() + ") was lost: nothing came from " + source
                    + " for " + listen.workerTimeout() + " (KilnOptions.workerTimeout)");
        }
    }

    /** @return the joined workers, in no order */
    List<JoinedWorker> joinedWorkers() {
        return new ArrayList<>(joined.values());
    }

    /** Stops receiving, closes the client and the media driver (which deletes its directory). Idempotent. */
    @Override
    public void close() {
        synchronized (this) {
            if (closed) {
                return;
            }
            closed = true;
        }
        try {
            receiver.join(1_000);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
        for (PendingJoin p : pending.values()) {
            p.link.close();
        }
        aeron.close();
        driver.close();
    }

    @Override
    public String toString() {
        return "ControlPlane(" + directory + (endpoint != null ? ", listening on " + endpoint : "") + ")";
    }

    /** One join in progress; control thread only. */
    private static final class PendingJoin {
        final Hello hello;
        final ExclusivePublication link;
        final JoinHandshake.DriverSide handshake;
        final long deadline;
        String refuse;
        boolean challenged;
        JoinHandshake.Response response;

        PendingJoin(Hello hello, ExclusivePublication link, JoinHandshake.DriverSide handshake, long deadline) {
            this.hello = hello;
            this.link = link;
            this.handshake = handshake;
            this.deadline = deadline;
        }
    }
}
