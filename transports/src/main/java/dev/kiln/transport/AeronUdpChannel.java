package dev.kiln.transport;

import dev.kiln.compiler.ExecutionPlan.ChannelSpec;
import dev.kiln.tensor.Tensor;
import io.aeron.Aeron;
import io.aeron.ChannelUriStringBuilder;
import io.aeron.ExclusivePublication;
import io.aeron.Image;
import io.aeron.Publication;
import io.aeron.Subscription;
import io.aeron.logbuffer.BufferClaim;
import io.aeron.logbuffer.FragmentHandler;
import io.aeron.logbuffer.Header;
import org.agrona.DirectBuffer;
import org.agrona.MutableDirectBuffer;
import org.agrona.concurrent.UnsafeBuffer;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.util.Arrays;
import java.util.List;
import java.util.Objects;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.locks.LockSupport;

/**
 * A {@link Channel} whose writer and readers may run on different hosts: values travel over Aeron
 * UDP (reliable, ordered, flow-controlled) and are reassembled straight into each reader's
 * preallocated slot. Each side lives in its own process and is made by its own factory:
 * {@link #writer} in the writer's process, {@link #reader} in each reader's. Same semantics as
 * {@link ShmChannel}: values are copied by a {@link ValueCodec}; {@link #poll} returns a
 * zero-copy {@link Tensor#view} of the reader's slot for a tensor, valid until the reader
 * releases its sequence, and a new decoded object for any other value; a {@link RemoteError}
 * travels as a value.
 *
 * <h2>Protocol</h2>
 * The writer has one exclusive publication per reader, to that reader's endpoint on the data
 * stream, and one subscription on its own endpoint for the release stream; each reader has a
 * subscription on its endpoint for the data stream and one exclusive publication to the writer's
 * endpoint on the release stream. An encoded value is sent as data frames of at most one Aeron
 * frame each (never fragmented by Aeron), each starting with a 32-byte header: sequence, offset
 * of the chunk in the encoded value, the value's total length, channel id, flags. The reader
 * copies each chunk into its slot {@code sequence mod slots} at that offset; the value is
 * published to the reader when the last chunk arrives. Releasing sends the reader's released
 * count (16 bytes: count, channel id, reader index) on the release stream; counts are
 * cumulative, so a release that cannot be sent at once is folded into the next one. The writer
 * offers sequence {@code n} only once every reader's released count exceeds
 * {@code n - slots}, so a slot is never overwritten while its reader holds it. See
 * {@code docs/aeron-udp.md}.
 *
 * <h2>Authentication</h2>
 * Opened with a key (the same on every side; the executor makes one per graph), every data frame carries a
 * 16-byte HMAC-SHA256 tag after its header, over the header and the chunk, and every release message one over its
 * 16 bytes ({@link FrameMac}; one derived key per direction). A frame or message whose tag does not verify is
 * dropped and counted ({@link #forgedFrames}); an authentic one that cannot be news (from another Aeron stream than
 * the first that carried an authentic frame, of another channel, a chunk or count already received) is dropped and
 * counted too ({@link #replayedFrames}). Without a key, such frames fail the channel. Tags cost a copy of each
 * frame through a reused array and one HMAC per frame per reader; nothing is encrypted.
 *
 * <h2>Threads and waiting</h2>
 * Every method of one side is for one thread at a time, the owner of that side (a hand-over needs
 * a happens-before edge): on the writer side {@link #offer}, {@link #awaitReleased},
 * {@link #pump}, {@link #isConnected}, {@link #lostPeer} and {@link #close}; on a reader side
 * {@link #poll}, {@link #release}, {@link #awaitPublished}, {@link #pump}, {@link #isConnected},
 * {@link #lostPeer} and {@link #close}. No other thread touches the channel: the subscriptions
 * are polled by the owner, from {@link #poll} and {@link #offer} themselves when they need news,
 * and from {@link #pump}, which an owner's duty cycle may call while it has nothing else to do.
 * No peer can unpark the owner, so {@link #crossesProcesses()} is true and a waiting owner sleeps
 * in {@link #awaitPublished} or {@link #awaitReleased}, which poll with parks of 1 us growing
 * to 1 ms.
 *
 * <h2>Liveness</h2>
 * {@link #lostPeer} says whether a peer is gone: an image of it closed after it had been
 * available (it closed its end, or sent nothing for the media driver's image liveness timeout),
 * or a publication to it stayed not connected for longer than the channel's peer timeout,
 * counted from construction for the first connection. An owner calls it while it waits (the
 * await methods return false early once a peer is lost) and turns a loss into
 * {@code ActorDiedException} naming the peer's worker. A lost peer is never forgotten: an image
 * that comes back may have missed data.
 *
 * <h2>Cost</h2>
 * The hot path takes no lock. In steady state the channel allocates nothing per message of its
 * own: frames are claimed in the publication's term buffer and chunks copied with reused
 * buffers. The writer encodes each value once into a private staging buffer (one copy more than
 * {@link ShmChannel}), then Aeron's term buffer receives a second copy; the reader copies each
 * chunk once from the receiving term buffer into its slot. {@link #poll} allocates what it
 * returns, as {@link ShmChannel#poll} does: a slice of the slot and the value the
 * {@link ValueCodec} decodes from it (a boxed number, a {@link String}, the {@link Tensor} view
 * object); encoding a {@link String} or a registered class allocates too. Growing a slot or the
 * staging buffer allocates the larger buffer and frees the old one.
 */
public final class AeronUdpChannel implements Channel {

    /** {@link #lostPeer} while no peer is lost. */
    public static final int NO_PEER_LOST = -2;
    /** {@link #lostPeer} on a reader side whose writer is lost. */
    public static final int WRITER = -1;

    /** Bytes of the header that starts every data frame. */
    private static final int DATA_HEADER = 32;
    private static final int DATA_SEQUENCE = 0;
    private static final int DATA_OFFSET = 8;
    private static final int DATA_TOTAL = 16;
    private static final int DATA_CHANNEL = 24;
    private static final int DATA_FLAGS = 28;
    /** Flag: the writer encoded with big-endian native order (the codec writes native order). */
    private static final int FLAG_BIG_ENDIAN = 1;
    private static final int NATIVE_FLAGS = ByteOrder.nativeOrder() == ByteOrder.BIG_ENDIAN ? FLAG_BIG_ENDIAN : 0;

    /** Bytes of a release message: released count, channel id, reader index. */
    private static final int RELEASE_MESSAGE = 16;
    private static final int RELEASE_COUNT = 0;
    private static final int RELEASE_CHANNEL = 8;
    private static final int RELEASE_READER = 12;
    /** Bytes of the tag that follows a data frame's header, and a release message, on an authenticated channel. */
    public static final int TAG_BYTES = FrameMac.TAG_BYTES;
    /** The fewest bytes of a channel key. */
    public static final int MIN_KEY_BYTES = FrameMac.MIN_KEY_BYTES;
    /** Release messages are tiny: the smallest term Aeron allows. */
    private static final int RELEASE_TERM_LENGTH = 64 * 1024;

    private static final ByteOrder WIRE = ByteOrder.LITTLE_ENDIAN;
    private static final int FRAGMENT_LIMIT = 64;
    private static final long MIN_AWAIT_PARK_NS = 1_000;
    private static final long MAX_AWAIT_PARK_NS = 1_000_000;
    private static final long CONNECTED = Long.MIN_VALUE;
    private static final long SLOT_ALIGN = 64;
    private static final long PAGE = 4096;

    /**
     * Where the ends of one channel listen and which streams it uses; the same value on the writer
     * and every reader. Endpoints are {@code host:port} of the interface the process listens on
     * (loopback when writer and readers share a host). Several channels may share endpoints when
     * their stream ids differ: Aeron multiplexes them on one socket.
     *
     * @param writerEndpoint  where the writer receives releases
     * @param readerEndpoints per reader index, where that reader receives data
     * @param dataStreamId    the Aeron stream id of the data frames to reader 0; reader {@code r} receives on
     *                        {@code dataStreamId + r}, so that readers sharing an endpoint (one JVM, or one media
     *                        driver) never see each other's frames
     * @param releaseStreamId the Aeron stream id of the release messages; differs from the data stream's
     * @param mtuLength       the data publications' MTU in bytes: a multiple of 32 from 128 to 65504; 1408 (Aeron's
     *                        default) fits any Ethernet path, loopback takes up to 65504
     * @param termLength      the data publications' term length in bytes: a power of two from 64 KiB to 1 GiB; each
     *                        publication and each receiving image maps three terms
     */
    public record Route(String writerEndpoint, List<String> readerEndpoints, int dataStreamId, int releaseStreamId,
                        int mtuLength, int termLength) {

        /**
         * Checks and copies the values.
         *
         * @throws IllegalArgumentException naming the value out of range
         */
        public Route {
            checkEndpoint(writerEndpoint, "writerEndpoint");
            readerEndpoints = List.copyOf(readerEndpoints);
            if (readerEndpoints.isEmpty()) {
                throw new IllegalArgumentException("a route needs at least one reader endpoint");
            }
            for (String e : readerEndpoints) {
                checkEndpoint(e, "readerEndpoints");
            }
            if (releaseStreamId - dataStreamId >= 0 && releaseStreamId - dataStreamId < readerEndpoints.size()) {
                throw new IllegalArgumentException("releaseStreamId " + releaseStreamId + " must lie outside the data "
                        + "streams " + dataStreamId + " to " + (dataStreamId + readerEndpoints.size() - 1)
                        + " (one per reader)");
            }
            if (mtuLength < 128 || mtuLength > 65504 || mtuLength % 32 != 0) {
                throw new IllegalArgumentException("mtuLength must be a multiple of 32 from 128 to 65504, got " + mtuLength);
            }
            if (termLength < 64 * 1024 || termLength > (1 << 30) || Integer.bitCount(termLength) != 1) {
                throw new IllegalArgumentException("termLength must be a power of two from 64 KiB to 1 GiB, got "
                        + termLength);
            }
        }

        /**
         * @param reader a reader index
         * @return the stream id on which that reader receives data
         */
        public int dataStreamId(int reader) {
            return dataStreamId + reader;
        }

        private static void checkEndpoint(String endpoint, String name) {
            Objects.requireNonNull(endpoint, name);
            int colon = endpoint.lastIndexOf(':');
            if (colon <= 0 || colon == endpoint.length() - 1) {
                throw new IllegalArgumentException(name + ": '" + endpoint + "' is not host:port");
            }
        }
    }

    private final ChannelSpec spec;
    private final Route route;
    private final ValueCodec codec;
    private final boolean growth;
    private final int slotCount;
    private final int readerCount;
    /** This side's reader index, or {@link #WRITER}. */
    private final int side;
    private final long peerTimeoutNs;
    private final String edge;
    /** Tags of data frames and of release messages; null on a channel without authentication. */
    private final FrameMac dataMac;
    private final FrameMac releaseMac;
    /** Bytes before a data frame's chunk: its header, then its tag when authenticated. */
    private final int frameHeader;
    /** Bytes of a release message: with its tag when authenticated. */
    private final int releaseLength;
    /** Authenticated: a whole data frame, built (writer) or checked (reader) here; null otherwise. */
    private final byte[] frameBytes;
    private final UnsafeBuffer frameBuffer;
    /** A release message: built here (reader), or checked here when authenticated (writer). */
    private final byte[] releaseBytes;
    private final UnsafeBuffer releaseBuffer;
    /** Frames and release messages dropped because their tag did not verify: forged or mutated. */
    private volatile long forgedFrames;
    /** Authentic frames and release messages dropped: already received, or sent again on another stream. */
    private volatile long replayedFrames;

    // ---- writer side (side == WRITER)
    private final ExclusivePublication[] dataPublications;
    private final Subscription releaseSubscription;
    private final FragmentHandler onRelease = this::onRelease;
    private final BufferClaim claim = new BufferClaim();
    /** Rewrapped around each chunk copied, on either side: no allocation per frame. */
    private final UnsafeBuffer chunk = new UnsafeBuffer(0, 0);
    private final long[] released;
    private final Image[] releaseImages;
    /** Per reader: since when it has not been connected (construction time at first), or {@link #CONNECTED}. */
    private final long[] disconnectedSince;
    /** Per reader: bytes of the pending value already claimed in its publication. */
    private final long[] sent;
    private Arena stagingArena;
    private MemorySegment staging;
    private long published;
    private long minReleased;
    /** The sequence being sent, or -1: frames of it still wait for room in some publication. */
    private long pendingSequence = -1;
    private long pendingLength;
    /** Frames claimed so far, for {@link #pump}'s work count; wraps harmlessly. */
    private int framesClaimed;

    // ---- reader side (side >= 0)
    private final Subscription dataSubscription;
    private final ExclusivePublication releasePublication;
    private final FragmentHandler onData = this::onData;
    private final Arena[] slotArenas;
    private final MemorySegment[] slots;
    private final long[] slotLengths;
    /** Reader side: per slot, the tensor view handed out last, handed out again while it still fits. */
    private final Tensor[] views;
    private Image dataImage;
    /** Sequences fully received. */
    private long complete;
    /** Bytes of sequence {@link #complete} received so far. */
    private long assembled;
    private long releasedCount;
    /** The released count the writer has been sent; -1 until the first (hello) message went out. */
    private long sentReleased = -1;
    /** Since when the writer has not been connected (construction time at first), or {@link #CONNECTED}. */
    private long writerDisconnectedSince;

    // ---- both
    private String failure;
    private int lostPeer = NO_PEER_LOST;
    private String lossReason;
    private boolean closed;

    private AeronUdpChannel(ChannelSpec spec, Route route, ValueCodec codec, boolean growth, int side,
                            long peerTimeoutNs, byte[] key, ExclusivePublication[] dataPublications,
                            Subscription releaseSubscription, Subscription dataSubscription,
                            ExclusivePublication releasePublication) {
        this.spec = spec;
        this.route = route;
        this.codec = Objects.requireNonNull(codec, "codec");
        this.growth = growth;
        this.slotCount = spec.slots();
        this.readerCount = spec.readers().size();
        this.side = side;
        this.peerTimeoutNs = peerTimeoutNs;
        this.edge = "channel c" + spec.id() + " (node " + spec.node() + ")";
        this.dataMac = key == null ? null : new FrameMac(key, "data");
        this.releaseMac = key == null ? null : new FrameMac(key, "release");
        this.frameHeader = DATA_HEADER + (key == null ? 0 : TAG_BYTES);
        this.releaseLength = RELEASE_MESSAGE + (key == null ? 0 : TAG_BYTES);
        this.frameBytes = key == null ? null : new byte[route.mtuLength()];
        this.frameBuffer = key == null ? null : new UnsafeBuffer(frameBytes);
        this.releaseBytes = new byte[releaseLength];
        this.releaseBuffer = new UnsafeBuffer(releaseBytes);
        this.dataPublications = dataPublications;
        this.releaseSubscription = releaseSubscription;
        this.dataSubscription = dataSubscription;
        this.releasePublication = releasePublication;
        long capacity = initialCapacity(spec);
        long now = System.nanoTime();
        if (side == WRITER) {
            this.released = new long[readerCount];
            this.releaseImages = new Image[readerCount];
            this.disconnectedSince = new long[readerCount];
            Arrays.fill(disconnectedSince, now);
            this.sent = new long[readerCount];
            this.slotArenas = null;
            this.slots = null;
            this.slotLengths = null;
            this.views = null;
            this.stagingArena = Arena.ofShared();
            this.staging = stagingArena.allocate(capacity, SLOT_ALIGN);
        } else {
            this.released = null;
            this.releaseImages = null;
            this.disconnectedSince = null;
            this.sent = null;
            this.slotArenas = new Arena[slotCount];
            this.slots = new MemorySegment[slotCount];
            this.slotLengths = new long[slotCount];
            this.views = new Tensor[slotCount];
            for (int s = 0; s < slotCount; s++) {
                slotArenas[s] = Arena.ofShared();
                try {
                    slots[s] = slotArenas[s].allocate(capacity, SLOT_ALIGN);
                } catch (RuntimeException | OutOfMemoryError e) {
                    for (int t = 0; t <= s; t++) {
                        slotArenas[t].close();
                    }
                    throw e;
                }
            }
            releaseBuffer.putInt(RELEASE_CHANNEL, spec.id(), WIRE);
            releaseBuffer.putInt(RELEASE_READER, side, WIRE);
            this.writerDisconnectedSince = now;
        }
    }

    /**
     * Opens the writer side of a channel in the writer's process: a subscription for the release
     * stream on {@code route.writerEndpoint()} and one publication per reader endpoint on the data
     * stream. Returns at once; the readers connect when they come up (see {@link #isConnected}).
     *
     * @param aeron         the client of this host's media driver; it outlives the channel
     * @param spec          the plan's channel: slot count, readers, initial slot size in bytes
     * @param route         the endpoints and streams, the same as every reader's
     * @param codec         encodes values; readers need a codec with the same registered classes
     * @param growth        {@code CompileOptions.slotGrowth}: whether a value larger than a slot grows the slots,
     *                      else {@link #offer} throws; readers must be given the same
     * @param peerTimeoutNs how long a reader may stay not connected, in nanoseconds, before {@link #lostPeer}
     *                      reports it
     * @param key           the channel's key, the same as every reader's, at least {@value #MIN_KEY_BYTES} bytes
     *                      (not kept: the channel derives its own keys from it): every data frame and release
     *                      message carries a tag made with it, and one whose tag does not verify is dropped and
     *                      counted; or null for no authentication
     * @return the writer side; {@link #poll} and {@link #release} throw on it
     * @throws IllegalArgumentException          if the spec, route, timeout or key do not fit together
     * @throws io.aeron.exceptions.AeronException if the media driver refuses a publication or subscription
     */
    public static AeronUdpChannel writer(Aeron aeron, ChannelSpec spec, Route route, ValueCodec codec,
                                         boolean growth, long peerTimeoutNs, byte[] key) {
        check(spec, route, peerTimeoutNs, key);
        ExclusivePublication[] publications = new ExclusivePublication[route.readerEndpoints().size()];
        Subscription releases = null;
        try {
            releases = aeron.addSubscription(subscriptionUri(route.writerEndpoint()), route.releaseStreamId());
            for (int r = 0; r < publications.length; r++) {
                publications[r] = aeron.addExclusivePublication(new ChannelUriStringBuilder().media("udp")
                        .endpoint(route.readerEndpoints().get(r)).mtu(route.mtuLength()).termLength(route.termLength())
                        .build(), route.dataStreamId(r));
            }
            return new AeronUdpChannel(spec, route, codec, growth, WRITER, peerTimeoutNs, key, publications,
                    releases, null, null);
        } catch (RuntimeException | OutOfMemoryError e) {
            closeQuietly(e, releases);
            closeQuietly(e, publications);
            throw e;
        }
    }

    /**
     * Opens the side of reader {@code reader} in that reader's process: a subscription for the
     * data stream on {@code route.readerEndpoints().get(reader)} and a publication to
     * {@code route.writerEndpoint()} on the release stream, plus its slots in this process's
     * memory. Returns at once; the writer connects when it comes up (see {@link #isConnected}).
     *
     * @param aeron         the client of this host's media driver; it outlives the channel
     * @param spec          the plan's channel, as the writer's
     * @param route         the endpoints and streams, as the writer's
     * @param reader        this side's reader index
     * @param codec         decodes values; it must have the writer's registered classes
     * @param growth        {@code CompileOptions.slotGrowth}, as the writer's
     * @param peerTimeoutNs how long the writer may stay not connected, in nanoseconds, before {@link #lostPeer}
     *                      reports it
     * @param key           the writer's key (see {@link #writer}), or null, as the writer's
     * @return the reader side; {@link #offer} throws on it, and {@link #poll} and {@link #release} take
     *         {@code reader} only
     * @throws IllegalArgumentException          if the spec, route, reader index, timeout or key do not fit together
     * @throws io.aeron.exceptions.AeronException if the media driver refuses a publication or subscription
     */
    public static AeronUdpChannel reader(Aeron aeron, ChannelSpec spec, Route route, int reader, ValueCodec codec,
                                         boolean growth, long peerTimeoutNs, byte[] key) {
        check(spec, route, peerTimeoutNs, key);
        if (reader < 0 || reader >= spec.readers().size()) {
            throw new IllegalArgumentException("channel c" + spec.id() + " has readers 0 to " + (spec.readers().size() - 1)
                    + ", got reader " + reader);
        }
        Subscription data = null;
        ExclusivePublication releases = null;
        try {
            data = aeron.addSubscription(subscriptionUri(route.readerEndpoints().get(reader)), route.dataStreamId(reader));
            releases = aeron.addExclusivePublication(new ChannelUriStringBuilder().media("udp")
                    .endpoint(route.writerEndpoint()).termLength(RELEASE_TERM_LENGTH).build(), route.releaseStreamId());
            return new AeronUdpChannel(spec, route, codec, growth, reader, peerTimeoutNs, key, null, null, data,
                    releases);
        } catch (RuntimeException | OutOfMemoryError e) {
            closeQuietly(e, data, releases);
            throw e;
        }
    }

    private static void check(ChannelSpec spec, Route route, long peerTimeoutNs, byte[] key) {
        if (key != null && key.length < MIN_KEY_BYTES) {
            throw new IllegalArgumentException("channel c" + spec.id() + ": a key needs at least " + MIN_KEY_BYTES
                    + " bytes, got " + key.length);
        }
        if (spec.slots() < 1 || spec.readers().isEmpty()) {
            throw new IllegalArgumentException("channel c" + spec.id() + " needs at least one slot and one reader, has "
                    + spec.slots() + " slots and " + spec.readers().size() + " readers");
        }
        if (route.readerEndpoints().size() != spec.readers().size()) {
            throw new IllegalArgumentException("channel c" + spec.id() + " has " + spec.readers().size()
                    + " readers, its route " + route.readerEndpoints().size() + " reader endpoints");
        }
        if (peerTimeoutNs <= 0) {
            throw new IllegalArgumentException("peerTimeoutNs must be > 0, got " + peerTimeoutNs);
        }
    }

    private static String subscriptionUri(String endpoint) {
        return new ChannelUriStringBuilder().media("udp").endpoint(endpoint).build();
    }

    private static long initialCapacity(ChannelSpec spec) {
        return Math.max(64, roundUp(spec.slotBytes(), SLOT_ALIGN));
    }

    private static long roundUp(long value, long alignment) {
        return Math.multiplyExact(Math.ceilDiv(value, alignment), alignment);
    }

    private static void closeQuietly(Throwable cause, AutoCloseable... resources) {
        for (AutoCloseable c : resources) {
            if (c != null) {
                try {
                    c.close();
                } catch (Exception e) {
                    cause.addSuppressed(e);
                }
            }
        }
    }

    @Override
    public ChannelSpec spec() {
        return spec;
    }

    /** @return the endpoints and streams this channel was opened with */
    public Route route() {
        return route;
    }

    /** @return this side's reader index, or {@link #WRITER} on the writer side */
    public int side() {
        return side;
    }

    /** @return true: the writer and readers run in different processes, usually on different hosts */
    @Override
    public boolean crossesProcesses() {
        return true;
    }

    // ---- writer

    /**
     * Encodes {@code value} and sends it to every reader as sequence {@code sequence}; see
     * {@link Channel#offer}. Returns false, having sent nothing, while a reader has not released
     * {@code sequence - slots}. Returns false too while a reader's publication is back-pressured
     * or not connected: the value is then encoded and partly sent, and the writer must offer the
     * same sequence again (the value passed again is ignored: what was encoded the first time is
     * sent) until it returns true. Writer side, its owner thread only.
     *
     * @return whether every reader's publication holds the whole value
     * @throws IllegalStateException    on a reader side, after {@link #close}, for a sequence out of order,
     *                                  if a publication closed, or if a reader broke the protocol (the message
     *                                  says how)
     * @throws IllegalArgumentException if the value cannot be encoded (see {@link ValueCodec#encode}), or is
     *                                  larger than a slot while growth is disabled; nothing is sent and the
     *                                  sequence may be offered again with another value
     */
    @Override
    public boolean offer(long sequence, Object value) {
        checkWriter();
        if (pendingSequence >= 0) {
            if (sequence != pendingSequence) {
                throw new IllegalStateException(edge + ": offer of sequence " + sequence + " while sequence "
                        + pendingSequence + " is still being sent; offer it again until it returns true");
            }
            return finishPending();
        }
        if (sequence != published) {
            throw new IllegalStateException(edge + ": offer of sequence " + sequence + ", the next sequence is "
                    + published);
        }
        if (!isFree(sequence)) {
            return false;
        }
        long length = codec.encode(value, staging);
        if (length < 0) {
            growStaging(-length);
            length = codec.encode(value, staging);
        }
        pendingSequence = sequence;
        pendingLength = length;
        Arrays.fill(sent, 0);
        return finishPending();
    }

    /**
     * Sleeps until {@link #offer} of {@code sequence} can succeed: every reader released
     * {@code sequence - slots} and no earlier offer still waits for room in a publication; or
     * until the timeout expires, a peer is lost or the thread is interrupted. Polls the release
     * stream and sends waiting frames while it waits, with parks of 1 us growing to 1 ms. Writer
     * side, its owner thread only.
     *
     * @param sequence     the sequence the writer wants to offer
     * @param timeoutNanos longest wait in nanoseconds
     * @return whether {@code offer} can go ahead; false on timeout, interrupt (the status stays set), a lost
     *         peer (see {@link #lostPeer}) or a broken protocol (the next {@code offer} throws)
     * @throws IllegalStateException on a reader side or after {@link #close}
     */
    @Override
    public boolean awaitReleased(long sequence, long timeoutNanos) {
        checkWriter();
        long deadline = System.nanoTime() + timeoutNanos;
        long park = MIN_AWAIT_PARK_NS;
        while (true) {
            int work = pump();
            if (failure != null) {
                return false;
            }
            if (pendingSequence >= 0 ? allSent() : isFree(sequence)) {
                return true;
            }
            if (lostPeer() != NO_PEER_LOST) {
                return false;
            }
            long remaining = deadline - System.nanoTime();
            if (remaining <= 0 || Thread.currentThread().isInterrupted()) {
                return false;
            }
            if (work > 0) {
                park = MIN_AWAIT_PARK_NS;
            } else {
                LockSupport.parkNanos(Math.min(park, remaining));
                park = Math.min(park << 1, MAX_AWAIT_PARK_NS);
            }
        }
    }

    private void checkWriter() {
        if (side != WRITER) {
            throw new IllegalStateException(edge + ": this is the side of reader " + side + "; only the writer side offers");
        }
        if (closed) {
            throw new IllegalStateException(edge + " is closed");
        }
        if (failure != null) {
            throw new IllegalStateException(failure);
        }
    }

    /** Writer side only. */
    @Override
    public boolean isFree(long sequence) {
        if (released == null) {
            throw new IllegalStateException("channel c" + spec.id() + ": only the writer's side checks for a free slot");
        }
        long wrap = sequence - slotCount;
        if (minReleased <= wrap) {
            drainReleases();
            long min = Long.MAX_VALUE;
            for (long r : released) {
                min = Math.min(min, r);
            }
            minReleased = min;
        }
        return minReleased > wrap;
    }

    private boolean finishPending() {
        if (!sendPending()) {
            return false;
        }
        published = pendingSequence + 1;
        pendingSequence = -1;
        return true;
    }

    private boolean allSent() {
        for (long s : sent) {
            if (s < pendingLength) {
                return false;
            }
        }
        return true;
    }

    /** @return whether every reader's publication holds the whole pending value */
    private boolean sendPending() {
        boolean done = true;
        for (int r = 0; r < readerCount; r++) {
            if (sent[r] < pendingLength && !sendFrames(r)) {
                done = false;
            }
        }
        return done;
    }

    /** @return whether reader {@code r}'s publication holds the whole pending value */
    private boolean sendFrames(int r) {
        ExclusivePublication publication = dataPublications[r];
        int maxChunk = publication.maxPayloadLength() - frameHeader;
        long offset = sent[r];
        long address = staging.address();
        try {
            while (offset < pendingLength) {
                int length = (int) Math.min(maxChunk, pendingLength - offset);
                if (dataMac != null) {
                    signFrame(offset, length);
                }
                long result = publication.tryClaim(frameHeader + length, claim);
                if (result < 0) {
                    if (result == Publication.BACK_PRESSURED || result == Publication.NOT_CONNECTED
                            || result == Publication.ADMIN_ACTION) {
                        return false;
                    }
                    throw new IllegalStateException(edge + ": the data publication to reader " + r + " at "
                            + route.readerEndpoints().get(r) + " failed: " + Publication.errorString(result));
                }
                MutableDirectBuffer frame = claim.buffer();
                int at = claim.offset();
                if (dataMac != null) {
                    frame.putBytes(at, frameBytes, 0, frameHeader + length);
                } else {
                    putHeader(frame, at, offset);
                    chunk.wrap(address + offset, length);
                    frame.putBytes(at + DATA_HEADER, chunk, 0, length);
                }
                claim.commit();
                framesClaimed++;
                offset += length;
            }
            return true;
        } finally {
            sent[r] = offset;
        }
    }

    private void putHeader(MutableDirectBuffer frame, int at, long offset) {
        frame.putLong(at + DATA_SEQUENCE, pendingSequence, WIRE);
        frame.putLong(at + DATA_OFFSET, offset, WIRE);
        frame.putLong(at + DATA_TOTAL, pendingLength, WIRE);
        frame.putInt(at + DATA_CHANNEL, spec.id(), WIRE);
        frame.putInt(at + DATA_FLAGS, NATIVE_FLAGS, WIRE);
    }

    /** Builds the authenticated frame of the pending value's chunk at {@code offset}: header, tag, chunk. */
    private void signFrame(long offset, int length) {
        putHeader(frameBuffer, 0, offset);
        MemorySegment.copy(staging, ValueLayout.JAVA_BYTE, offset, frameBytes, frameHeader, length);
        dataMac.sign(frameBytes, 0, DATA_HEADER, frameHeader, length, DATA_HEADER);
    }

    private void growStaging(long needed) {
        long capacity = staging.byteSize();
        if (!growth) {
            throw new IllegalArgumentException(edge + ": a value of " + needed + " encoded bytes does not fit its slots of "
                    + capacity + " bytes and slot growth is disabled; raise CompileOptions.bufferBytes to at least "
                    + needed + " or enable CompileOptions.slotGrowth");
        }
        Arena grown = Arena.ofShared();
        try {
            staging = grown.allocate(Math.max(2 * capacity, roundUp(needed, PAGE)), SLOT_ALIGN);
        } catch (RuntimeException | OutOfMemoryError e) {
            grown.close();
            throw e;
        }
        stagingArena.close();
        stagingArena = grown;
    }

    /** @return release messages handled */
    private int drainReleases() {
        int total = 0;
        int n;
        do {
            n = releaseSubscription.poll(onRelease, FRAGMENT_LIMIT);
            total += n;
        } while (n == FRAGMENT_LIMIT);
        return total;
    }

    /**
     * Never throws: Aeron hands a handler's exception to the client's error handler and goes on. Authenticated, a
     * message whose tag does not verify is dropped and counted as forged, and an authentic one that cannot be news
     * (another channel's or reader's stream, an older count) as replayed; without authentication these fail the
     * channel.
     */
    private void onRelease(DirectBuffer buffer, int offset, int length, Header header) {
        if (failure != null) {
            return;
        }
        if (releaseMac != null) {
            if (length != releaseLength) {
                forgedFrames++;
                return;
            }
            buffer.getBytes(offset, releaseBytes, 0, length);
            if (!releaseMac.verify(releaseBytes, 0, RELEASE_MESSAGE, 0, 0, RELEASE_MESSAGE)) {
                forgedFrames++;
                return;
            }
            buffer = releaseBuffer;
            offset = 0;
        } else if (length != RELEASE_MESSAGE) {
            fail(edge + ": a release message of " + length + " bytes on stream " + route.releaseStreamId() + " at "
                    + route.writerEndpoint() + ", expected " + RELEASE_MESSAGE);
            return;
        }
        long count = buffer.getLong(offset + RELEASE_COUNT, WIRE);
        int channel = buffer.getInt(offset + RELEASE_CHANNEL, WIRE);
        int reader = buffer.getInt(offset + RELEASE_READER, WIRE);
        if (channel != spec.id() || reader < 0 || reader >= readerCount) {
            if (releaseMac != null) {
                replayedFrames++;
                return;
            }
            fail(edge + ": a release message for channel c" + channel + " reader " + reader + " on stream "
                    + route.releaseStreamId() + " at " + route.writerEndpoint() + "; two channels share a stream id");
            return;
        }
        Image image = releaseImages[reader];
        if (image == null) {
            releaseImages[reader] = (Image) header.context();
        } else if (image != header.context()) {
            if (releaseMac != null) {
                replayedFrames++;
                return;
            }
            fail(edge + ": reader " + reader + " released from " + ((Image) header.context()).sourceIdentity()
                    + " after releasing from " + image.sourceIdentity() + "; a reader's stream may not change");
            return;
        }
        if (count < released[reader] && releaseMac != null) {
            replayedFrames++;
            return;
        }
        long sendable = pendingSequence >= 0 ? pendingSequence + 1 : published;
        if (count < released[reader] || count > sendable) {
            fail(edge + ": reader " + reader + " released " + count + " sequences after " + released[reader]
                    + ", with " + sendable + " sent");
            return;
        }
        released[reader] = count;
    }

    // ---- readers

    /**
     * Returns the value of {@code sequence} if all of it has arrived; else polls the data stream
     * (and sends a release that could not go out before) and checks again. See
     * {@link Channel#poll}. A tensor comes back as a view of this reader's slot, valid until this
     * reader releases the sequence (after {@link #close()} access throws
     * {@link IllegalStateException}); copy it with {@link Tensor#copyOf} to keep it. Other values
     * are decoded into new objects. Reader side, its owner thread only.
     *
     * @param reader   this side's reader index
     * @param sequence the reader's next sequence: at least the released count and less than it plus the slot count
     * @return the value, or {@link #NOT_READY}
     * @throws IllegalStateException    on the writer side, for another reader index, a sequence outside the
     *                                  reader's window, after {@link #close}, or if the writer broke the protocol
     *                                  (frames lost or out of order, another writer on the stream, a value too
     *                                  large for a slot while growth is disabled here; the message says which)
     * @throws IllegalArgumentException if the value's class is not registered with this process's codec
     */
    @Override
    public Object poll(int reader, long sequence) {
        checkReader(reader);
        if (sequence < releasedCount || sequence - releasedCount >= slotCount) {
            throw new IllegalStateException(edge + ", reader " + side + ": polled sequence " + sequence + " with "
                    + releasedCount + " released and " + slotCount + " slots; a sequence may be polled from its"
                    + " arrival until released");
        }
        if (sequence >= complete) {
            receive(sequence);
            if (failure != null) {
                throw new IllegalStateException(failure);
            }
            if (sequence >= complete) {
                return NOT_READY;
            }
        }
        int slot = (int) (sequence % slotCount);
        Tensor last = views[slot];
        if (last != null && ValueCodec.stillDescribes(slots[slot], slotLengths[slot], last)) {
            return last; // a like tensor in the same slot: the same view, nothing allocated
        }
        Object value = codec.decode(slots[slot].asSlice(0, slotLengths[slot]));
        views[slot] = value instanceof Tensor t ? t : null;
        return value;
    }

    /**
     * Gives the slot of {@code sequence} back to the writer: sends this reader's released count on
     * the release stream, or, if the publication has no room or no connection now, at the next
     * {@link #poll}, {@link #pump} or release. See {@link Channel#release}. Reader side, its owner
     * thread only.
     *
     * @param reader   this side's reader index
     * @param sequence the sequence read last: the oldest arrived sequence not yet released
     * @throws IllegalStateException on the writer side, for another reader index, a sequence not arrived or
     *                               released already, or after {@link #close}
     */
    @Override
    public void release(int reader, long sequence) {
        checkReader(reader);
        if (sequence != releasedCount || sequence >= complete) {
            throw new IllegalStateException(edge + ", reader " + side + ": released sequence " + sequence + " with "
                    + releasedCount + " released and " + complete + " arrived; release each arrived sequence once,"
                    + " in order");
        }
        releasedCount = sequence + 1;
        sendRelease();
    }

    /**
     * Sleeps until {@code sequence} has arrived (so that {@link #poll} returns it), the timeout
     * expires, the writer is lost or the thread is interrupted. Polls the data stream while it
     * waits, with parks of 1 us growing to 1 ms. Reader side, its owner thread only.
     *
     * @param reader       this side's reader index
     * @param sequence     the sequence to wait for
     * @param timeoutNanos longest wait in nanoseconds
     * @return whether {@code sequence} has arrived; false on timeout, interrupt (the status stays set), a lost
     *         writer (see {@link #lostPeer}) or a broken protocol (the next {@code poll} throws)
     * @throws IllegalStateException on the writer side, for another reader index, or after {@link #close}
     */
    @Override
    public boolean awaitPublished(int reader, long sequence, long timeoutNanos) {
        checkReader(reader);
        long deadline = System.nanoTime() + timeoutNanos;
        long park = MIN_AWAIT_PARK_NS;
        while (true) {
            int work = sequence < complete ? 0 : receive(sequence);
            if (sequence < complete) {
                return true;
            }
            if (failure != null || lostPeer() != NO_PEER_LOST) {
                return false;
            }
            long remaining = deadline - System.nanoTime();
            if (remaining <= 0 || Thread.currentThread().isInterrupted()) {
                return false;
            }
            if (work > 0) {
                park = MIN_AWAIT_PARK_NS;
            } else {
                LockSupport.parkNanos(Math.min(park, remaining));
                park = Math.min(park << 1, MAX_AWAIT_PARK_NS);
            }
        }
    }

    private void checkReader(int reader) {
        if (side == WRITER) {
            throw new IllegalStateException(edge + ": this is the writer side; only a reader side polls and releases");
        }
        if (reader != side) {
            throw new IllegalStateException(edge + ": this is the side of reader " + side + ", called for reader " + reader);
        }
        if (closed) {
            throw new IllegalStateException(edge + " is closed");
        }
    }

    /** Polls the data stream until {@code sequence} is complete, nothing more has arrived or the channel failed. */
    private int receive(long sequence) {
        int work = sendRelease();
        int n;
        do {
            n = dataSubscription.poll(onData, FRAGMENT_LIMIT);
            work += n;
        } while (n > 0 && sequence >= complete && failure == null);
        return work;
    }

    /** @return 1 if a release message went out, else 0 */
    private int sendRelease() {
        if (sentReleased == releasedCount) {
            return 0;
        }
        releaseBuffer.putLong(RELEASE_COUNT, releasedCount, WIRE);
        if (releaseMac != null) {
            releaseMac.sign(releaseBytes, 0, RELEASE_MESSAGE, 0, 0, RELEASE_MESSAGE);
        }
        if (releasePublication.offer(releaseBuffer, 0, releaseLength) > 0) {
            sentReleased = releasedCount;
            return 1;
        }
        return 0;
    }

    /**
     * Never throws: Aeron hands a handler's exception to the client's error handler and goes on. Authenticated, a
     * frame whose tag does not verify is dropped and counted as forged, and an authentic one that cannot be news
     * (from a stream other than the first authentic one, of another channel, or a chunk already received) as
     * replayed; without authentication such frames fail the channel.
     */
    private void onData(DirectBuffer buffer, int offset, int length, Header header) {
        if (failure != null) {
            return;
        }
        if (dataMac != null) {
            if (length < frameHeader || length > frameBytes.length) {
                forgedFrames++;
                return;
            }
            buffer.getBytes(offset, frameBytes, 0, length);
            if (!dataMac.verify(frameBytes, 0, DATA_HEADER, frameHeader, length - frameHeader, DATA_HEADER)) {
                forgedFrames++;
                return;
            }
            Image image = (Image) header.context();
            if (dataImage == null) {
                dataImage = image; // only a stream that carried an authentic frame is the writer's
            } else if (image != dataImage) {
                replayedFrames++;
                return;
            }
            buffer = frameBuffer;
            offset = 0;
        } else {
            if (header.context() != dataImage && !adoptImage((Image) header.context())) {
                return;
            }
            if (length < DATA_HEADER) {
                fail(edge + ", reader " + side + ": a data frame of " + length + " bytes, shorter than its header");
                return;
            }
        }
        long sequence = buffer.getLong(offset + DATA_SEQUENCE, WIRE);
        long at = buffer.getLong(offset + DATA_OFFSET, WIRE);
        long total = buffer.getLong(offset + DATA_TOTAL, WIRE);
        int channel = buffer.getInt(offset + DATA_CHANNEL, WIRE);
        int flags = buffer.getInt(offset + DATA_FLAGS, WIRE);
        int chunkLength = length - frameHeader;
        if (channel != spec.id()) {
            if (dataMac != null) {
                replayedFrames++; // another channel's authentic frame, sent to this stream
                return;
            }
            fail(edge + ", reader " + side + ": a data frame of channel c" + channel + " on stream "
                    + route.dataStreamId() + "; two channels share a stream id");
            return;
        }
        if (flags != NATIVE_FLAGS) {
            fail(edge + ", reader " + side + ": the writer's byte order differs from this host's ("
                    + ByteOrder.nativeOrder() + "); Kiln values cross only between hosts of one byte order");
            return;
        }
        if (dataMac != null && (sequence < complete || (sequence == complete && at < assembled))) {
            replayedFrames++;
            return;
        }
        if (sequence != complete || at != assembled || total <= 0 || at + chunkLength > total) {
            fail(edge + ", reader " + side + ": a frame of sequence " + sequence + " at offset " + at + " of " + total
                    + " bytes, expected sequence " + complete + " at offset " + assembled
                    + ": frames were lost or reordered" + (dataMac == null ? "" : " (" + forgedFrames
                    + " forged and " + replayedFrames + " replayed frames were dropped: an on-path attacker can"
                    + " displace data it cannot forge)"));
            return;
        }
        if (sequence - releasedCount >= slotCount) {
            fail(edge + ", reader " + side + ": the writer sent sequence " + sequence + " with only " + releasedCount
                    + " released and " + slotCount + " slots: it broke the in-flight bound");
            return;
        }
        int slot = (int) (sequence % slotCount);
        if (at == 0) {
            if (total > slots[slot].byteSize() && !growSlot(slot, total)) {
                return;
            }
            slotLengths[slot] = total;
        }
        chunk.wrap(slots[slot].address() + at, chunkLength);
        buffer.getBytes(offset + frameHeader, chunk, 0, chunkLength);
        assembled = at + chunkLength;
        if (assembled == total) {
            assembled = 0;
            complete = sequence + 1;
        }
    }

    private boolean adoptImage(Image image) {
        if (dataImage == null) {
            dataImage = image;
            return true;
        }
        fail(edge + ", reader " + side + ": data from " + image.sourceIdentity() + " (session " + image.sessionId()
                + ") after data from " + dataImage.sourceIdentity() + " (session " + dataImage.sessionId()
                + "); a channel has one writer and its stream may not be replaced");
        return false;
    }

    private boolean growSlot(int slot, long total) {
        long capacity = slots[slot].byteSize();
        if (!growth) {
            fail(edge + ", reader " + side + ": the writer sent a value of " + total + " encoded bytes, larger than"
                    + " this reader's slots of " + capacity + " bytes, and slot growth is disabled here; give the writer"
                    + " and its readers the same CompileOptions.slotGrowth");
            return false;
        }
        long grownCapacity = Math.max(2 * capacity, roundUp(total, PAGE));
        Arena grown = Arena.ofShared();
        try {
            slots[slot] = grown.allocate(grownCapacity, SLOT_ALIGN);
            views[slot] = null;
        } catch (RuntimeException | OutOfMemoryError e) {
            grown.close();
            fail(edge + ", reader " + side + ": cannot grow slot " + slot + " to " + grownCapacity + " bytes for a value"
                    + " of " + total + " bytes: " + e);
            return false;
        }
        // The writer sends this sequence only after this reader released the previous one of the slot.
        slotArenas[slot].close();
        slotArenas[slot] = grown;
        return true;
    }

    /** @return the capacity in bytes of this reader's slot {@code slot}, for tests */
    long slotCapacity(int slot) {
        return slots[slot].byteSize();
    }

    // ---- both

    /**
     * Does the channel's background work once, for an owner's duty cycle: on the writer side,
     * polls the release stream and sends frames that earlier waited for room; on a reader side,
     * polls the data stream into the slots and sends a release that could not go out before.
     * {@link #offer}, {@link #poll} and the await methods do the same when they need it, so an
     * owner that calls them often need not pump. The owner thread only.
     *
     * @return the work done: fragments handled plus messages or frames sent; 0 if there was none
     * @throws IllegalStateException after {@link #close}
     */
    public int pump() {
        if (closed) {
            throw new IllegalStateException(edge + " is closed");
        }
        if (side != WRITER) {
            return receive(Long.MAX_VALUE);
        }
        int work = drainReleases();
        if (pendingSequence >= 0 && failure == null) {
            int before = framesClaimed;
            sendPending();
            work += framesClaimed - before;
        }
        return work;
    }

    /**
     * Whether every peer is connected now: on the writer side, each reader's data publication is
     * connected and each reader's release stream has been heard from; on a reader side, the
     * writer's data stream is there and the release publication is connected. Polls like
     * {@link #pump} first, so that news is seen. The owner thread only.
     *
     * @return true once every peer is connected, until one is lost
     * @throws IllegalStateException after {@link #close}
     */
    public boolean isConnected() {
        pump();
        if (side == WRITER) {
            for (int r = 0; r < readerCount; r++) {
                Image image = releaseImages[r];
                if (image == null || image.isClosed() || !dataPublications[r].isConnected()) {
                    return false;
                }
            }
            return true;
        }
        Image image = dataImageOrNull();
        return writerThere(image) && (image == null || !image.isClosed()) && releasePublication.isConnected();
    }

    /**
     * Says whether a peer is gone, so that the owner can fail what waits on it: a peer whose image
     * closed after it had been available (it closed its end, its media driver went away, or
     * nothing came from it for the media driver's image liveness timeout), or whose publication
     * stayed not connected for longer than the peer timeout (counted from construction for the
     * first connection). Once a peer is lost this returns it for good. Polls like {@link #pump}
     * first. The owner thread only; no allocation unless a peer is found lost.
     *
     * @return {@link #NO_PEER_LOST}; on the writer side the index of a lost reader; on a reader side
     *         {@link #WRITER}
     * @throws IllegalStateException after {@link #close}
     */
    public int lostPeer() {
        if (lostPeer != NO_PEER_LOST) {
            return lostPeer;
        }
        pump();
        long now = System.nanoTime();
        if (side == WRITER) {
            for (int r = 0; r < readerCount && lostPeer == NO_PEER_LOST; r++) {
                Image image = releaseImages[r];
                String endpoint = route.readerEndpoints().get(r);
                if (image != null && image.isClosed()) {
                    lose(r, "the release stream of reader " + r + " (" + endpoint + ", from " + image.sourceIdentity()
                            + ") closed" + closeCause(image, "reader"));
                } else if (image != null && dataPublications[r].isConnected()) {
                    disconnectedSince[r] = CONNECTED;
                } else if (disconnectedSince[r] == CONNECTED) {
                    disconnectedSince[r] = now;
                } else if (now - disconnectedSince[r] > peerTimeoutNs) {
                    lose(r, "reader " + r + " at " + endpoint + " was not connected for "
                            + TimeUnit.NANOSECONDS.toMillis(now - disconnectedSince[r]) + " ms (peer timeout "
                            + TimeUnit.NANOSECONDS.toMillis(peerTimeoutNs) + " ms)");
                }
            }
            return lostPeer;
        }
        Image image = dataImageOrNull();
        if (image != null && image.isClosed()) {
            lose(WRITER, "the writer's data stream to reader " + side + " (" + route.readerEndpoints().get(side)
                    + ", from " + image.sourceIdentity() + ") closed" + closeCause(image, "writer"));
        } else if (writerThere(image) && releasePublication.isConnected()) {
            writerDisconnectedSince = CONNECTED;
        } else if (writerDisconnectedSince == CONNECTED) {
            writerDisconnectedSince = now;
        } else if (now - writerDisconnectedSince > peerTimeoutNs) {
            lose(WRITER, "the writer at " + route.writerEndpoint() + " was not connected to reader " + side + " for "
                    + TimeUnit.NANOSECONDS.toMillis(now - writerDisconnectedSince) + " ms (peer timeout "
                    + TimeUnit.NANOSECONDS.toMillis(peerTimeoutNs) + " ms)");
        }
        return lostPeer;
    }

    /**
     * @return why {@link #lostPeer} reports a peer (which peer, its endpoint, what was seen), or null while
     *         none is lost
     */
    public String lossReason() {
        return lossReason;
    }

    /**
     * @return the writer's data stream: without authentication the first that connected, with it the first that
     *         carried an authentic frame (anyone may connect a stream first); null until then
     */
    private Image dataImageOrNull() {
        if (dataImage == null && dataMac == null && dataSubscription.imageCount() > 0) {
            adoptImage(dataSubscription.imageAtIndex(0));
        }
        return dataImage;
    }

    /** Whether the writer's stream is there: adopted, or (authenticated, before the first frame) some stream is. */
    private boolean writerThere(Image image) {
        return image != null || (dataMac != null && dataSubscription.imageCount() > 0);
    }

    /**
     * @return data frames and release messages this side dropped because their tag did not verify (forged or
     *         mutated); 0 without authentication. Any thread
     */
    public long forgedFrames() {
        return forgedFrames;
    }

    /**
     * @return authentic data frames and release messages this side dropped because they could not be news: sent
     *         again, on another stream or to another channel; 0 without authentication. Any thread
     */
    public long replayedFrames() {
        return replayedFrames;
    }

    /** @return whether every frame and release message of this channel carries a tag that is checked */
    public boolean authenticated() {
        return dataMac != null;
    }

    private static String closeCause(Image image, String peer) {
        return image.isEndOfStream() ? " at its end: the " + peer + " closed it"
                : " before its end: the " + peer + " or its media driver went away, or was silent for the media"
                + " driver's image liveness timeout";
    }

    private void lose(int peer, String reason) {
        lostPeer = peer;
        lossReason = edge + ": " + reason;
    }

    private void fail(String reason) {
        if (failure == null) {
            failure = reason;
        }
    }

    /**
     * Closes this side's publications and subscription (a publication's stream ends, which its
     * peer sees as a closed image) and frees its slots or staging buffer. Tensor views from
     * {@link #poll} throw {@link IllegalStateException} afterwards. Idempotent; the owner thread
     * only, and no other call may race with it. The Aeron client stays open.
     */
    @Override
    public void close() {
        if (closed) {
            return;
        }
        closed = true;
        RuntimeException failed = null;
        AutoCloseable[] resources = side == WRITER ? dataPublications : new AutoCloseable[] {dataSubscription, releasePublication};
        for (AutoCloseable c : resources) {
            failed = closeOne(c, failed);
        }
        failed = closeOne(side == WRITER ? releaseSubscription : null, failed);
        if (side == WRITER) {
            stagingArena.close();
        } else {
            for (Arena a : slotArenas) {
                a.close();
            }
        }
        if (failed != null) {
            throw failed;
        }
    }

    private static RuntimeException closeOne(AutoCloseable c, RuntimeException failed) {
        if (c == null) {
            return failed;
        }
        try {
            c.close();
        } catch (Exception e) {
            RuntimeException r = e instanceof RuntimeException re ? re : new IllegalStateException(e);
            if (failed == null) {
                return r;
            }
            failed.addSuppressed(r);
        }
        return failed;
    }

    @Override
    public String toString() {
        return "AeronUdpChannel(c" + spec.id() + ", " + (side == WRITER ? "writer at " + route.writerEndpoint()
                : "reader " + side + " at " + route.readerEndpoints().get(side)) + ")";
    }
}
