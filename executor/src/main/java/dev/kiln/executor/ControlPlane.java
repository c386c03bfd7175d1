package dev.kiln.executor;

import dev.kiln.ControlStats;
import dev.kiln.transport.JoinHandshake;
import dev.kiln.transport.Sbe;
import dev.kiln.transport.WorkerInfo;
import io.aeron.Aeron;
import io.aeron.ChannelUriStringBuilder;
import io.aeron.ExclusivePublication;
import io.aeron.Image;
import io.aeron.Subscription;
import io.aeron.driver.MediaDriver;
import io.aeron.driver.ThreadingMode;
import io.aeron.logbuffer.Header;
import org.agrona.DirectBuffer;
import org.agrona.concurrent.BackoffIdleStrategy;
import org.agrona.concurrent.SleepingMillisIdleStrategy;
import org.agrona.concurrent.UnsafeBuffer;

import java.io.UncheckedIOException;
import java.net.InetAddress;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.Iterator;
import java.util.List;
import java.util.Map;
import java.util.Queue;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicReference;

/**
 * The driver's side of the control plane to its workers: an embedded Aeron media driver (its directory under
 * the Kiln run directory), an Aeron client, and one thread that receives every worker's messages. There is one
 * kind of worker and one protocol: a child JVM the runtime started joins over {@code aeron:ipc} on this media
 * driver with a secret the runtime made for it alone; a worker from anywhere else ({@link Listen}) joins over
 * UDP on the listen endpoint with the shared join secret. Both go through the same handshake
 * ({@link JoinHandshake}: HELLO, CHALLENGE, RESPONSE, ACCEPT with the driver's proof, READY), and then every
 * control message either way is authenticated ({@link ControlLink}). One liveness rule for both: each side
 * sends a heartbeat when it has sent nothing for {@value #HEARTBEAT_MS} ms, and a worker the driver has not
 * heard from for {@code workerTimeout} (not counting time the driver itself was paused) is declared lost.
 *
 * <p>Admission: at most {@value #MAX_PENDING_PER_SOURCE} joins in progress per source address and
 * {@value #MAX_PENDING_JOINS} in all; a source whose join failed waits before its next one, longer after each
 * failure ({@link Admission}); a HELLO must be padded to {@link ControlCodec#MIN_HELLO_BYTES}, name an endpoint
 * that is an IP address and a port and nothing else, and that address must be the one the HELLO came from.
 * Before a sender proved the secret, the driver sends it nothing larger than its HELLO, and only there.
 * Warnings about peers are escaped ({@link LogText}) and rate-limited ({@link PeerWarnings}).
 *
 * <p>Started with the runtime when it accepts workers, else on the first child JVM; closed with the runtime.
 * Thread-safe.
 */
public final class ControlPlane implements AutoCloseable {

    /** The Aeron channel of child JVMs' control streams. */
    public static final String IPC = "aeron:ipc";
    /** The stream on which the driver receives joins and then control messages: on IPC, and on its UDP endpoint. */
    public static final int JOIN_STREAM = 10;
    /** The stream, on a joined worker's UDP endpoint, on which the driver sends it control messages. */
    public static final int WORKER_STREAM = 11;
    /** Child JVM {@code i} of a runtime receives its control messages on IPC stream {@code CHILD_STREAM_BASE + i}. */
    public static final int CHILD_STREAM_BASE = 100;
    /** A graph's UDP channels take stream ids from here up: far above the control streams. */
    public static final int FIRST_GRAPH_STREAM = 1_000_000;
    /** The version of the join protocol; a worker of another version is refused with both versions named. */
    public static final int PROTOCOL_VERSION = 2;
    /** A side that has sent nothing for this long sends a heartbeat. */
    public static final long HEARTBEAT_MS = 250;
    /** Room for large control frames on IPC: a frame may be an eighth of a term. */
    private static final int TERM_LENGTH = 64 * 1024 * 1024;
    /** UDP control terms: a frame may be an eighth, 2 MiB. */
    static final int UDP_CONTROL_TERM_LENGTH = 16 * 1024 * 1024;
    /** A join that has not finished in this time is dropped. */
    private static final long JOIN_TIMEOUT_NS = TimeUnit.SECONDS.toNanos(10);
    /** At most this many joins in progress at once. */
    static final int MAX_PENDING_JOINS = 64;
    /** The largest message a sender that has not joined may send: a HELLO is 512 bytes, a RESPONSE under 70 KiB. */
    static final int PRE_JOIN_MAX_BYTES = 128 * 1024;
    /** At most this many joins in progress from one address. */
    static final int MAX_PENDING_PER_SOURCE = 4;
    /** A loop iteration that comes this much later than the last one means this process was paused. */
    private static final long PAUSE_NS = TimeUnit.MILLISECONDS.toNanos(500);
    private static final long TIMER_NS = TimeUnit.MILLISECONDS.toNanos(10);
    private static final System.Logger LOG = System.getLogger("dev.kiln");
    private static final int UDP = 0;
    private static final int IPC_KIND = 1;

    /**
     * How the driver runs its control plane.
     *
     * @param workerTimeout how long a worker may stay silent before it is declared lost
     * @param maxCallBytes  the largest dynamic-call argument or result, both ways
     * @param classes       the value classes every worker registers when it joins
     * @param listen        how to accept workers from other hosts, or null to accept none
     */
    public record Settings(Duration workerTimeout, long maxCallBytes, List<String> classes, Listen listen) {
    }

    /**
     * How the runtime accepts workers from other hosts.
     *
     * @param endpoint {@code host:port} to listen on; port 0 picks a free port
     * @param secret   the shared join secret, at least {@value JoinHandshake#MIN_SECRET_BYTES} bytes
     * @param joins    decides on and hears of joining workers
     */
    public record Listen(String endpoint, byte[] secret, Joins joins) {
    }

    /** Decides whether a worker that proved the secret may join. */
    public interface Joins {
        /**
         * Admits a worker that proved the secret and registered the classes. Called on the control plane's thread.
         *
         * @param hello  what the worker said about itself (authenticated by the handshake)
         * @param info   the resources it advertised, authenticated by the handshake
         * @param attach connects the new handle to its control link; call it before anyone can see the worker
         * @return the worker
         * @throws IllegalStateException saying why it cannot join (its name is taken, the runtime is closed)
         */
        JoinedWorker admit(Hello hello, WorkerInfo info, java.util.function.Consumer<RemoteHost> attach);

        /**
         * @param hello a worker's hello
         * @return why such a worker cannot join (its name is taken), or null
         */
        String refusal(Hello hello);
    }

    /**
     * What a joining worker says first.
     *
     * @param name         the worker's name
     * @param endpoint     the {@code address:port} where it receives UDP, or null over IPC
     * @param pid          its process id
     * @param shmDirectory its shared-memory directory
     * @param source       the address its hello came from, for logs
     */
    public record Hello(String name, String endpoint, long pid, String shmDirectory, String source) {
    }

    private final MediaDriver driver;
    private final Aeron aeron;
    private final String name;
    private final String endpoint;
    private final Settings settings;
    private final Subscription ipcSubscription;
    private final Subscription udpSubscription;
    private final BoundedAssembler ipcAssembler;
    private final BoundedAssembler udpAssembler;
    private final ControlCounters counters = new ControlCounters();
    private final PeerWarnings warnings;
    /** Joins over UDP, by source address (IPv6 by its /64: one host may hold a whole prefix). */
    private final Admission admission = new Admission(MAX_PENDING_PER_SOURCE, MAX_PENDING_JOINS,
            TimeUnit.MILLISECONDS.toNanos(250), TimeUnit.SECONDS.toNanos(30), 4096);
    /**
     * Joins of child JVMs, apart: a flood over UDP must not keep the driver's own children (or a restart) out. Only
     * children this driver started and waits for get this far, so the limits only guard against a child looping.
     */
    private final Admission childAdmission = new Admission(MAX_PENDING_PER_SOURCE, MAX_PENDING_JOINS,
            TimeUnit.MILLISECONDS.toNanos(250), TimeUnit.SECONDS.toNanos(30), 4096);
    /** Child JVMs started and not yet joined, by name. */
    private final Map<String, ExpectedChild> expected = new ConcurrentHashMap<>();
    /** Joins in progress, by (kind, session); control thread only. */
    private final Map<Long, PendingJoin> pending = new HashMap<>();
    /** Joined workers, by (kind, session). */
    private final Map<Long, RemoteHost> hosts = new ConcurrentHashMap<>();
    /** Workers declared lost, kept a while to tell them so if they come back. */
    private final Map<Long, Tombstone> tombstones = new ConcurrentHashMap<>();
    /** Sessions whose stream ended, from the Aeron client's thread. */
    private final Queue<Long> ended = new ConcurrentLinkedQueue<>();
    /** Sessions whose image went away, for whatever reason, from the Aeron client's thread. */
    private final Queue<Long> gone = new ConcurrentLinkedQueue<>();
    private final Thread receiver;
    private final long timeoutNs;
    private volatile boolean closed;
    private int nextChild;

    private ControlPlane(MediaDriver driver, Aeron aeron, String name, String endpoint, Settings settings,
                         Subscription ipc, Subscription udp) {
        this.driver = driver;
        this.aeron = aeron;
        this.name = name;
        this.endpoint = endpoint;
        this.settings = settings;
        this.ipcSubscription = ipc;
        this.udpSubscription = udp;
        this.timeoutNs = settings.workerTimeout().toNanos();
        this.warnings = new PeerWarnings(LOG, name);
        this.ipcAssembler = assembler(IPC_KIND);
        this.udpAssembler = assembler(UDP);
        this.receiver = Thread.ofPlatform().name("kiln-control").daemon(true).unstarted(this::receive);
    }

    /**
     * @param workerTimeout how long a worker may be silent before it is declared lost
     * @return the Aeron timeouts (client liveness, driver timeout, image liveness) that let a worker paused for less
     *         than {@code workerTimeout} carry on: never below Aeron's default 10 s, and three times the worker timeout
     */
    static long aeronTimeoutNs(Duration workerTimeout) {
        return Math.max(TimeUnit.SECONDS.toNanos(10), 3 * workerTimeout.toNanos());
    }

    /**
     * Starts the media driver and connects to it; with {@code settings.listen()}, also listens for workers.
     *
     * @param runDirectory the Kiln run directory; the media driver's directory is made inside it
     * @param name         the runtime's name, unique in this JVM
     * @param settings     timeouts, limits, classes and how to accept workers from other hosts
     * @return the control plane
     * @throws UncheckedIOException  if the directory cannot be made
     * @throws IllegalStateException if the run directory is a link, another user's or open to other users
     * @throws IllegalStateException if the endpoint cannot be bound
     */
    public static ControlPlane start(Path runDirectory, String name, Settings settings) {
        JvmFlags.requireAeron("the control plane of " + name + " (worker JVMs and workers from other hosts)");
        Listen listen = settings.listen();
        long aeronTimeoutNs = aeronTimeoutNs(settings.workerTimeout());
        MediaDriver.Context context = new MediaDriver.Context()
                .threadingMode(ThreadingMode.SHARED)
                .ipcTermBufferLength(TERM_LENGTH)
                .termBufferSparseFile(true)
                // A worker paused for less than the worker timeout must find its client and streams alive.
                .clientLivenessTimeoutNs(aeronTimeoutNs)
                .publicationUnblockTimeoutNs(aeronTimeoutNs + TimeUnit.SECONDS.toNanos(5))
                .imageLivenessTimeoutNs(aeronTimeoutNs)
                .publicationConnectionTimeoutNs(aeronTimeoutNs);
        if (listen == null) {
            // Control traffic only: the driver's conductor need not react within microseconds.
            context.sharedIdleStrategy(new SleepingMillisIdleStrategy(1));
        } else {
            // Data channels from other hosts arrive here too: park briefly, not for a whole millisecond.
            context.sharedIdleStrategy(new BackoffIdleStrategy(16, 16, 1_000, 100_000));
        }
        MediaDriver driver = AeronDirectories.launch(runDirectory, "KilnOptions.runDirectory", name, context);
        Aeron aeron = null;
        try {
            aeron = Aeron.connect(new Aeron.Context().aeronDirectoryName(driver.aeronDirectoryName())
                    .driverTimeoutMs(TimeUnit.NANOSECONDS.toMillis(aeronTimeoutNs)));
            AtomicReference<ControlPlane> self = new AtomicReference<>();
            Subscription ipc = aeron.addSubscription(IPC, JOIN_STREAM, ControlPlane::ignore, image -> {
                ControlPlane plane = self.get();
                if (plane != null) {
                    plane.imageGone(IPC_KIND, image);
                }
            });
            Endpoints.Bound bound = null;
            if (listen != null) {
                bound = Endpoints.bind(aeron, listen.endpoint(), JOIN_STREAM, image -> {
                    ControlPlane plane = self.get();
                    if (plane != null) {
                        plane.imageGone(UDP, image);
                    }
                });
            }
            ControlPlane plane = new ControlPlane(driver, aeron, name, bound != null ? bound.endpoint() : null, settings,
                    ipc, bound != null ? bound.subscription() : null);
            self.set(plane);
            plane.receiver.start();
            return plane;
        } catch (RuntimeException e) {
            if (aeron != null) {
                aeron.close();
            }
            driver.close();
            throw e;
        }
    }

    private static void ignore(Image image) {
    }

    private static long key(int kind, int session) {
        return ((long) kind << 32) | (session & 0xffff_ffffL);
    }

    private static int kindOf(long key) {
        return (int) (key >>> 32);
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

    /** @return the control messages this driver dropped */
    public ControlStats stats() {
        return counters.snapshot();
    }

    /** @return the settings this control plane runs with */
    Settings settings() {
        return settings;
    }

    /**
     * A child JVM the driver is about to start, which will join over IPC with its own secret.
     *
     * @param name   its name
     * @param secret the secret made for it, handed to it privately
     * @param child  its handle, told when it joined
     * @return the IPC stream on which it receives its control messages
     * @throws IllegalStateException if the control plane is closed
     */
    synchronized int expectChild(String name, byte[] secret, WorkerProcess child) {
        if (closed) {
            throw new IllegalStateException("the control plane is closed");
        }
        int stream = CHILD_STREAM_BASE + nextChild++;
        ExclusivePublication publication = aeron.addExclusivePublication(IPC, stream);
        expected.put(name, new ExpectedChild(secret.clone(), stream, publication, child));
        return stream;
    }

    /**
     * Forgets a child that did not join (or whose process ended): a HELLO in its name is ignored from now on.
     *
     * @param name its name
     */
    void forgetChild(String name) {
        ExpectedChild c = expected.remove(name);
        if (c != null && !c.joined) {
            c.publication.close();
        }
    }

    /** @param host a worker that left or died: its session is forgotten and its stream closed */
    void remove(RemoteHost host) {
        hosts.values().remove(host);
        ControlLink link = host.link();
        // A worker declared lost keeps its stream a while: it is told so if it comes back.
        if (link != null && tombstones.values().stream().noneMatch(t -> t.host == host)) {
            link.publication().close();
        }
    }

    /** @return the joined workers from other hosts, in no order */
    List<JoinedWorker> joinedWorkers() {
        List<JoinedWorker> all = new ArrayList<>();
        for (RemoteHost h : hosts.values()) {
            if (h instanceof JoinedWorker j) {
                all.add(j);
            }
        }
        return all;
    }

    private void receive() {
        // Sleeps up to 1 ms when idle: a dynamic call to a worker actor waits at most that for its reply.
        BackoffIdleStrategy idle = new BackoffIdleStrategy(64, 16, TimeUnit.MICROSECONDS.toNanos(1),
                TimeUnit.MILLISECONDS.toNanos(1));
        long lastLoop = System.nanoTime();
        long lastTimers = lastLoop;
        while (!closed) {
            int work = 0;
            try {
                long now = System.nanoTime();
                if (now - lastLoop > PAUSE_NS) {
                    // This process did not run since the last iteration ended (a freeze, a long GC): the workers'
                    // silence then is not theirs. Time spent handling messages is not a pause: lastLoop is taken after.
                    long paused = now - lastLoop;
                    hosts.values().forEach(h -> h.link().forgive(paused));
                }
                work += ipcSubscription.poll(ipcAssembler, 16);
                if (udpSubscription != null) {
                    work += udpSubscription.poll(udpAssembler, 16);
                }
                now = System.nanoTime();
                if (now - lastTimers >= TIMER_NS) {
                    lastTimers = now;
                    work += timers(now);
                }
            } catch (RuntimeException e) {
                LOG.log(System.Logger.Level.ERROR, name + ": the control plane's receiver failed and goes on", e);
            }
            lastLoop = System.nanoTime();
            idle.idle(work);
        }
    }

    /**
     * The assembler of one kind of join stream: a joined worker's messages up to a control frame, anyone else's up to
     * {@link #PRE_JOIN_MAX_BYTES} (a join step is far smaller), at most 64 senders assembling at once.
     */
    private BoundedAssembler assembler(int kind) {
        return new BoundedAssembler((b, o, l, h) -> onFrame(kind, b, o, l, h),
                session -> hosts.containsKey(key(kind, session)), ControlLink.MAX_FRAME, PRE_JOIN_MAX_BYTES, 64,
                session -> {
                    counters.malformed();
                    warnings.warn(() -> "dropped a control message from " + sourceOf(kind, session)
                            + " larger than its sender may send, or while 64 others were being assembled");
                });
    }

    /** From the Aeron client's thread: a session's image went away (its stream ended, or it fell silent). */
    private void imageGone(int kind, Image image) {
        long key = key(kind, image.sessionId());
        if (image.isEndOfStream()) {
            ended.add(key);
        }
        gone.add(key);
    }

    /** Heartbeats, liveness, pending joins, tombstones and ended streams. */
    private int timers(long now) {
        int work = servicePendingJoins(now);
        for (Long key; (key = gone.poll()) != null; ) {
            (kindOf(key) == IPC_KIND ? ipcAssembler : udpAssembler).sessionGone((int) (long) key);
        }
        for (Long key; (key = ended.poll()) != null; ) {
            RemoteHost h = hosts.get(key);
            if (h != null) {
                h.left("its control stream ended");
                work++;
            }
        }
        for (Map.Entry<Long, RemoteHost> e : hosts.entrySet()) {
            RemoteHost h = e.getValue();
            ControlLink link = h.link();
            if (now - link.lastSentNs() >= TimeUnit.MILLISECONDS.toNanos(HEARTBEAT_MS)) {
                link.trySend(counters.heartbeat());
            }
            if (now - link.lastHeardNs() > timeoutNs) {
                declareLost(e.getKey(), h, now);
                work++;
            }
        }
        for (Iterator<Tombstone> it = tombstones.values().iterator(); it.hasNext(); ) {
            Tombstone t = it.next();
            if (now - t.until > 0) {
                it.remove();
                t.host.link().publication().close();
            }
        }
        return work;
    }

    private void declareLost(long key, RemoteHost host, long now) {
        String why = host + " was silent for " + settings.workerTimeout() + " (KilnOptions.workerTimeout): declared"
                + " lost";
        hosts.remove(key);
        tombstones.put(key, new Tombstone(host, now + Math.max(timeoutNs, TimeUnit.SECONDS.toNanos(30)), why));
        host.link().trySend(new Message.Lost(why));
        host.lost(why);
    }

    /** A frame on a join subscription: a join step, or a joined worker's control message. */
    private void onFrame(int kind, DirectBuffer buffer, int offset, int length, Header header) {
        long key = key(kind, header.sessionId());
        RemoteHost host = hosts.get(key);
        if (host != null) {
            Message m = host.link().receive(buffer, offset, length);
            if (m != null) {
                try {
                    host.onMessage(m);
                } catch (RuntimeException e) {
                    host.protocolError(e);
                }
            }
            return;
        }
        Tombstone t = tombstones.get(key);
        if (t != null) {
            if (t.host.link().receive(buffer, offset, length) != null && System.nanoTime() - t.lastTold > 1_000_000_000L) {
                t.lastTold = System.nanoTime();
                t.host.link().trySend(new Message.Lost(t.why));
            }
            return;
        }
        int template;
        try {
            template = Sbe.templateId(buffer, offset, length);
        } catch (IllegalArgumentException e) {
            counters.malformed();
            warnings.warn(() -> "dropped a malformed control message from " + sourceOf(kind, header.sessionId())
                    + ": " + LogText.quote(e.getMessage()));
            return;
        }
        PendingJoin p = pending.get(key);
        if (p != null) {
            onJoinStep(key, p, template, buffer, offset, length);
        } else if (template == dev.kiln.transport.control.HelloDecoder.TEMPLATE_ID) {
            onHello(kind, key, header.sessionId(), buffer, offset, length);
        } else {
            counters.forged();
            warnings.warn(() -> "dropped a control message (template " + template + ") from "
                    + sourceOf(kind, header.sessionId()) + ", which has not joined");
        }
    }

    private String sourceOf(int kind, int session) {
        if (kind == IPC_KIND) {
            return "a process on this host's Aeron directory (IPC session " + session + ")";
        }
        Image image = udpSubscription.imageBySessionId(session);
        return image != null ? LogText.quote(image.sourceIdentity()) : "an unknown address";
    }

    private void onHello(int kind, long key, int session, DirectBuffer buffer, int offset, int length) {
        String from = sourceOf(kind, session);
        byte[] raw = new byte[length];
        buffer.getBytes(offset, raw);
        Message.Hello hello;
        try {
            if (length < ControlCodec.MIN_HELLO_BYTES) {
                throw new IllegalArgumentException("a HELLO of " + length + " bytes, not padded to "
                        + ControlCodec.MIN_HELLO_BYTES);
            }
            hello = (Message.Hello) ControlCodec.decode(new UnsafeBuffer(raw), length);
            int nameBytes = hello.name().getBytes(java.nio.charset.StandardCharsets.UTF_8).length;
            if (nameBytes == 0 || nameBytes > JoinHandshake.MAX_NAME_BYTES) {
                throw new IllegalArgumentException("a worker name of " + nameBytes + " bytes");
            }
            if (!printable(hello.name()) || !printable(hello.shmDirectory()) || hello.shmDirectory().isEmpty()) {
                throw new IllegalArgumentException("a name or shared-memory directory with control characters, or none");
            }
        } catch (IllegalArgumentException | ClassCastException e) {
            counters.malformed();
            warnings.warn(() -> "ignored a malformed HELLO from " + from + ": " + LogText.quote(e.getMessage()));
            return;
        }
        String source;
        String canonicalEndpoint = null;
        byte[] secret;
        ExclusivePublication publication;
        boolean owned;
        if (kind == IPC_KIND) {
            ExpectedChild child = expected.get(hello.name());
            if (child == null || child.joined || !hello.endpoint().isEmpty() || !child.child.isProcess(hello.pid())) {
                counters.forged();
                warnings.warn(() -> "ignored a HELLO over IPC in the name of " + LogText.quote(hello.name())
                        + ", which is no child JVM this driver is waiting for");
                return;
            }
            source = "ipc:" + hello.name();
            secret = child.secret;
            publication = child.publication;
            owned = false;
        } else {
            Image image = udpSubscription.imageBySessionId(session);
            String address = image == null ? null : host(image.sourceIdentity());
            try {
                canonicalEndpoint = endpointOf(hello.endpoint(), address);
            } catch (IllegalArgumentException e) {
                counters.malformed();
                warnings.warn(() -> "ignored a HELLO of " + LogText.quote(hello.name()) + " from " + from + ": "
                        + LogText.quote(e.getMessage()));
                return;
            }
            source = admissionKey(address);
            secret = settings.listen().secret();
            publication = null;
            owned = true;
        }
        String busy = admissionFor(kind).start(source, System.nanoTime());
        if (busy != null) {
            warnings.warn(() -> "ignored a HELLO of " + LogText.quote(hello.name()) + " from " + from + ": " + busy);
            return;
        }
        if (owned) {
            try {
                publication = aeron.addExclusivePublication(new ChannelUriStringBuilder().media("udp")
                        .endpoint(canonicalEndpoint).termLength(UDP_CONTROL_TERM_LENGTH).sparse(true).build(),
                        WORKER_STREAM);
            } catch (RuntimeException e) {
                admissionFor(kind).finished(source, false, System.nanoTime());
                warnings.warn(() -> "ignored a HELLO from " + from + ": cannot reach its endpoint: "
                        + LogText.quote(e.getMessage()));
                return;
            }
        }
        Hello h = new Hello(hello.name(), canonicalEndpoint, hello.pid(), hello.shmDirectory(), from);
        PendingJoin p = new PendingJoin(kind, source, h, hello.cookie(), raw, publication, owned,
                new JoinHandshake.DriverSide(secret, raw), System.nanoTime() + JOIN_TIMEOUT_NS);
        if (hello.protocolVersion() != PROTOCOL_VERSION) {
            p.refuse = "it speaks join protocol " + hello.protocolVersion() + ", this driver " + PROTOCOL_VERSION
                    + ": run the same Kiln version on the driver and its workers";
        } else if (kind == UDP) {
            p.refuse = settings.listen().joins().refusal(h);
        }
        pending.put(key, p);
    }

    /**
     * @param endpoint a HELLO's endpoint
     * @param source   the address the HELLO came from
     * @return the endpoint, checked: an IP address (IPv6 in brackets) and a port from 1 to 65535, nothing else,
     *         whose address is {@code source}
     * @throws IllegalArgumentException if it is not
     */
    static String endpointOf(String endpoint, String source) {
        int colon = endpoint.lastIndexOf(':');
        if (colon <= 0 || !endpoint.substring(colon + 1).matches("[0-9]{1,5}")) {
            throw new IllegalArgumentException("its endpoint " + LogText.quote(endpoint)
                    + " is not an IP address and a port");
        }
        int port = Integer.parseInt(endpoint.substring(colon + 1));
        String host = endpoint.substring(0, colon);
        boolean bracketed = host.startsWith("[") && host.endsWith("]");
        String literal = bracketed ? host.substring(1, host.length() - 1) : host;
        InetAddress address;
        try {
            if (literal.isEmpty() || !literal.matches("[0-9A-Fa-f:.]+") || (literal.contains(":") != bracketed)) {
                throw new IllegalArgumentException();
            }
            address = InetAddress.ofLiteral(literal);
        } catch (IllegalArgumentException e) {
            throw new IllegalArgumentException("its endpoint " + LogText.quote(endpoint)
                    + " is not an IP address and a port");
        }
        if (port < 1 || port > 65535) {
            throw new IllegalArgumentException("its endpoint " + LogText.quote(endpoint) + " has no port from 1 to 65535");
        }
        InetAddress from;
        try {
            from = source == null ? null : InetAddress.ofLiteral(source);
        } catch (IllegalArgumentException e) {
            from = null;
        }
        if (!address.equals(from)) {
            throw new IllegalArgumentException("its endpoint " + LogText.quote(endpoint) + " is not the address it "
                    + "sends from (" + LogText.quote(source) + "); the driver answers only there: give the worker a "
                    + "--listen address it sends from");
        }
        String canonical = address.getHostAddress();
        return (address instanceof java.net.Inet6Address ? "[" + canonical + "]" : canonical) + ":" + port;
    }

    /** @return whether the text has no control or line-breaking characters */
    private static boolean printable(String s) {
        return s.chars().noneMatch(c -> Character.isISOControl(c) || c == '\u2028' || c == '\u2029');
    }

    private Admission admissionFor(int kind) {
        return kind == IPC_KIND ? childAdmission : admission;
    }

    /**
     * @param address a sender's IP address, or null
     * @return what admission counts it under: an IPv4 address itself, an IPv6 address by its /64 prefix (a host is
     *         commonly given a whole /64, and could else take every join slot with addresses of its own)
     */
    static String admissionKey(String address) {
        if (address == null || !address.contains(":")) {
            return address;
        }
        try {
            byte[] a = InetAddress.ofLiteral(address).getAddress();
            if (a.length != 16) {
                return address;
            }
            return java.util.HexFormat.of().formatHex(a, 0, 8) + "::/64";
        } catch (IllegalArgumentException e) {
            return address;
        }
    }

    /** @return the address of an Aeron source identity {@code address:port}, without brackets */
    private static String host(String sourceIdentity) {
        int colon = sourceIdentity.lastIndexOf(':');
        String host = colon > 0 ? sourceIdentity.substring(0, colon) : sourceIdentity;
        return host.startsWith("[") && host.endsWith("]") ? host.substring(1, host.length() - 1) : host;
    }

    private void onJoinStep(long key, PendingJoin p, int template, DirectBuffer buffer, int offset, int length) {
        if (template == dev.kiln.transport.control.ResponseDecoder.TEMPLATE_ID) {
            byte[] raw = new byte[length];
            buffer.getBytes(offset, raw);
            JoinHandshake.Response r;
            try {
                r = JoinHandshake.Response.decode(raw);
            } catch (IllegalArgumentException e) {
                counters.malformed();
                fail(key, p, "a malformed join response (" + LogText.quote(e.getMessage()) + ")", true);
                return;
            }
            onResponse(key, p, r);
        } else if (ControlCodec.authenticated(template) && p.link != null) {
            Message m = p.link.receive(buffer, offset, length);
            if (m instanceof Message.Ready) {
                onReady(key, p);
            } else if (m instanceof Message.JoinFailed f) {
                fail(key, p, "it gave up joining: " + LogText.quote(f.reason()), true);
            } else if (m != null) {
                fail(key, p, "a " + m.getClass().getSimpleName() + " before READY", true);
            }
        } else if (template != dev.kiln.transport.control.HelloDecoder.TEMPLATE_ID) {
            counters.forged();
            warnings.warn(() -> "dropped a control message (template " + template + ") in the join of "
                    + p.hello.name() + " from " + p.hello.source() + ", out of turn");
        }
    }

    private void onResponse(long key, PendingJoin p, JoinHandshake.Response r) {
        if (!p.handshake.answers(r)) {
            // It answered a challenge this driver did not send: someone sprayed forged ones at it. Not its fault.
            counters.forged();
            warnings.warn(() -> "ignored a join response of " + p.hello.name() + " from "
                    + p.hello.source() + " to a challenge this driver did not send: a forged CHALLENGE reached it");
            return;
        }
        if (!p.challenged || p.response != null) {
            counters.forged();
            warnings.warn(() -> "ignored a join response of " + p.hello.name() + " out of turn");
            return;
        }
        p.response = r;
        if (!r.workerName().equals(p.hello.name()) || !p.handshake.accept(r)) {
            warnings.warn(() -> "refused worker " + p.hello.name() + " from " + p.hello.source()
                    + ": it does not know the join secret");
            refuse(key, p, "the join secret does not match the driver's");
            return;
        }
        String refusal = p.kind == UDP ? settings.listen().joins().refusal(p.hello) : null;
        if (refusal != null) {
            refuse(key, p, refusal);
            return;
        }
        p.link = new ControlLink(p.publication, p.handshake.keys(), settings.maxCallBytes(), counters, warnings,
                "worker " + p.hello.name() + " at " + p.hello.source());
        String failure = p.link.send(new Message.Accept(p.handshake.challenge(), p.handshake.proof(),
                settings.workerTimeout().toMillis(), settings.maxCallBytes(), settings.classes()),
                TimeUnit.SECONDS.toNanos(1));
        if (failure != null) {
            fail(key, p, "cannot send it the driver's proof: " + failure, false);
        }
        // Admitted once it registered the classes and said READY.
    }

    private void onReady(long key, PendingJoin p) {
        pending.remove(key);
        WorkerInfo info = p.response.info();
        RemoteHost host;
        try {
            if (p.kind == IPC_KIND) {
                ExpectedChild child = expected.get(p.hello.name());
                if (child == null || child.joined) {
                    throw new IllegalStateException("child JVM " + p.hello.name() + " is no longer expected");
                }
                child.joined = true;
                host = child.child;
                host.attach(p.link, this);
                child.child.joined(p.hello, info);
            } else {
                host = settings.listen().joins().admit(p.hello, info, h -> h.attach(p.link, this));
            }
        } catch (IllegalStateException e) {
            p.link.send(new Message.Lost("refused: " + e.getMessage()), TimeUnit.SECONDS.toNanos(1));
            admissionFor(p.kind).finished(p.source, false, System.nanoTime());
            if (p.owned) {
                p.publication.close();
            }
            warnings.warn(() -> "refused worker " + p.hello.name() + " from " + p.hello.source() + ": "
                    + e.getMessage());
            return;
        }
        hosts.put(key, host);
        admissionFor(p.kind).finished(p.source, true, System.nanoTime());
        LOG.log(System.Logger.Level.INFO, () -> name + ": worker " + p.hello.name() + " joined from "
                + p.hello.source() + ": " + host.resources());
    }

    private void refuse(long key, PendingJoin p, String why) {
        byte[] refused = ControlCodec.encode(new Message.Refused(p.cookie, fit(why, p.hello.name())));
        p.publication.offer(new UnsafeBuffer(refused));
        fail(key, p, null, false);
    }

    /** Cuts a reason so that the REFUSED that carries it is no larger than the smallest HELLO. */
    private static String fit(String why, String name) {
        int room = ControlCodec.MIN_HELLO_BYTES - 128;
        String s = why;
        while (s.getBytes(java.nio.charset.StandardCharsets.UTF_8).length > room) {
            s = s.substring(0, s.length() - 16);
        }
        return s;
    }

    /** Drops a join in progress; a failure delays its source's next join. */
    private void fail(long key, PendingJoin p, String why, boolean warn) {
        pending.remove(key);
        admissionFor(p.kind).finished(p.source, false, System.nanoTime());
        if (p.owned) {
            p.publication.close();
        }
        if (warn && why != null) {
            warnings.warn(() -> "dropped the join of " + p.hello.name() + " from " + p.hello.source()
                    + ": " + why);
        }
    }

    /** Sends challenges once their links connect, refuses what must be refused, expires stale joins. */
    private int servicePendingJoins(long now) {
        int work = 0;
        for (Iterator<Map.Entry<Long, PendingJoin>> it = pending.entrySet().iterator(); it.hasNext(); ) {
            Map.Entry<Long, PendingJoin> e = it.next();
            PendingJoin p = e.getValue();
            if (now - p.deadline > 0) {
                it.remove();
                admissionFor(p.kind).finished(p.source, false, now);
                if (p.owned) {
                    p.publication.close();
                }
                warnings.warn(() -> "dropped the join of " + p.hello.name() + " from " + p.hello.source()
                        + ": it did not finish within " + JOIN_TIMEOUT_NS / 1_000_000_000 + " s");
                work++;
            } else if (!p.challenged && p.publication.isConnected()) {
                byte[] answer = ControlCodec.encode(p.refuse != null
                        ? new Message.Refused(p.cookie, fit(p.refuse, p.hello.name()))
                        : new Message.Challenge(p.handshake.challenge(), p.cookie));
                if (answer.length > p.helloBytes.length) {
                    throw new IllegalStateException("an answer of " + answer.length + " bytes to a HELLO of "
                            + p.helloBytes.length);
                }
                if (p.publication.offer(new UnsafeBuffer(answer)) > 0) {
                    p.challenged = true;
                    if (p.refuse != null) {
                        warnings.warn(() -> "refused worker " + p.hello.name() + " from "
                                + p.hello.source() + ": " + p.refuse);
                        it.remove();
                        admissionFor(p.kind).finished(p.source, false, now);
                        if (p.owned) {
                            p.publication.close();
                        }
                    }
                }
                work++;
            }
        }
        return work;
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
            receiver.join(2_000);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
        aeron.close();
        driver.close();
    }

    @Override
    public String toString() {
        return "ControlPlane(" + driver.aeronDirectoryName() + (endpoint != null ? ", listening on " + endpoint : "")
                + ")";
    }

    /** A child JVM started and not yet joined. */
    private static final class ExpectedChild {
        final byte[] secret;
        final int stream;
        final ExclusivePublication publication;
        final WorkerProcess child;
        volatile boolean joined;

        ExpectedChild(byte[] secret, int stream, ExclusivePublication publication, WorkerProcess child) {
            this.secret = secret;
            this.stream = stream;
            this.publication = publication;
            this.child = child;
        }
    }

    /** One join in progress; control thread only. */
    private static final class PendingJoin {
        final int kind;
        final String source;
        final Hello hello;
        final byte[] cookie;
        final byte[] helloBytes;
        final ExclusivePublication publication;
        final boolean owned;
        final JoinHandshake.DriverSide handshake;
        final long deadline;
        String refuse;
        boolean challenged;
        JoinHandshake.Response response;
        ControlLink link;

        PendingJoin(int kind, String source, Hello hello, byte[] cookie, byte[] helloBytes,
                    ExclusivePublication publication, boolean owned, JoinHandshake.DriverSide handshake, long deadline) {
            this.kind = kind;
            this.source = source;
            this.hello = hello;
            this.cookie = cookie;
            this.helloBytes = helloBytes;
            this.publication = publication;
            this.owned = owned;
            this.handshake = handshake;
            this.deadline = deadline;
        }
    }

    /** A worker declared lost; control thread only. */
    private static final class Tombstone {
        final RemoteHost host;
        final long until;
        final String why;
        long lastTold = System.nanoTime();

        Tombstone(RemoteHost host, long until, String why) {
            this.host = host;
            this.until = until;
            this.why = why;
        }
    }
}
