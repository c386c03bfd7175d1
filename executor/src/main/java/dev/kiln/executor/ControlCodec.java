package dev.kiln.executor;

import dev.kiln.transport.AeronUdpChannel;
import dev.kiln.transport.JoinHandshake;
import dev.kiln.transport.Sbe;
import dev.kiln.transport.control.AcceptDecoder;
import dev.kiln.transport.control.AcceptEncoder;
import dev.kiln.transport.control.ActorStartedDecoder;
import dev.kiln.transport.control.ActorStartedEncoder;
import dev.kiln.transport.control.CallDecoder;
import dev.kiln.transport.control.CallEncoder;
import dev.kiln.transport.control.ChallengeDecoder;
import dev.kiln.transport.control.ChallengeEncoder;
import dev.kiln.transport.control.ChunkDecoder;
import dev.kiln.transport.control.ChunkEncoder;
import dev.kiln.transport.control.CommunicatorIdDecoder;
import dev.kiln.transport.control.CommunicatorIdEncoder;
import dev.kiln.transport.control.CreateActorDecoder;
import dev.kiln.transport.control.CreateActorEncoder;
import dev.kiln.transport.control.GraphFailedDecoder;
import dev.kiln.transport.control.GraphFailedEncoder;
import dev.kiln.transport.control.HeartbeatDecoder;
import dev.kiln.transport.control.HeartbeatEncoder;
import dev.kiln.transport.control.HelloDecoder;
import dev.kiln.transport.control.HelloEncoder;
import dev.kiln.transport.control.JoinFailedDecoder;
import dev.kiln.transport.control.JoinFailedEncoder;
import dev.kiln.transport.control.LeftDecoder;
import dev.kiln.transport.control.LeftEncoder;
import dev.kiln.transport.control.LoopDiedDecoder;
import dev.kiln.transport.control.LoopDiedEncoder;
import dev.kiln.transport.control.LostDecoder;
import dev.kiln.transport.control.LostEncoder;
import dev.kiln.transport.control.MessageHeaderEncoder;
import dev.kiln.transport.control.PrepareDecoder;
import dev.kiln.transport.control.PrepareEncoder;
import dev.kiln.transport.control.ReadyDecoder;
import dev.kiln.transport.control.ReadyEncoder;
import dev.kiln.transport.control.RefusedDecoder;
import dev.kiln.transport.control.RefusedEncoder;
import dev.kiln.transport.control.ReplyDecoder;
import dev.kiln.transport.control.ReplyEncoder;
import dev.kiln.transport.control.ReplyStatus;
import dev.kiln.transport.control.ShutdownDecoder;
import dev.kiln.transport.control.ShutdownEncoder;
import dev.kiln.transport.control.StartDecoder;
import dev.kiln.transport.control.StartEncoder;
import dev.kiln.transport.control.StopActorDecoder;
import dev.kiln.transport.control.StopActorEncoder;
import dev.kiln.transport.control.StopGraphDecoder;
import dev.kiln.transport.control.StopGraphEncoder;
import dev.kiln.transport.control.TaskFailedDecoder;
import dev.kiln.transport.control.TaskFailedEncoder;
import org.agrona.DirectBuffer;
import org.agrona.ExpandableArrayBuffer;
import org.agrona.MutableDirectBuffer;
import org.agrona.concurrent.UnsafeBuffer;

import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;

/**
 * Encodes {@link Message}s into the SBE messages of {@code kiln-control.xml} and decodes them as received from
 * another process. Decoding checks the header (schema, version, template, block length), every group's
 * dimensions and every length against what is left of the message before it allocates, and reads exactly the
 * message: a malformed message is an {@link IllegalArgumentException}, never another exception or an
 * allocation the bytes chose. Stateless and thread-safe.
 */
public final class ControlCodec {

    /** A HELLO is padded to at least this many bytes: the driver answers an unproven sender with no more. */
    public static final int MIN_HELLO_BYTES = 512;
    /** The most NCCL communicators a plan may have: one per actor would already be more than any plan makes. */
    static final int MAX_COMMUNICATORS = 4096;
    /** The longest graph data key accepted: the driver makes 32 bytes. */
    private static final int MAX_KEY_BYTES = 64;
    private static final int STRING_HEADER = 2;
    private static final int DATA_HEADER = 4;

    private ControlCodec() {
    }

    /**
     * @param templateId a template of the schema
     * @return whether messages of that template are sent after the join, with a sequence number and a MAC
     */
    public static boolean authenticated(int templateId) {
        return templateId >= AcceptDecoder.TEMPLATE_ID && templateId <= ChunkDecoder.TEMPLATE_ID;
    }

    /** @return the template id of a {@link Chunk} frame */
    static int chunkTemplate() {
        return ChunkDecoder.TEMPLATE_ID;
    }

    /**
     * @param buffer holds an authenticated message at offset 0 (its header checked)
     * @return its sequence number, the first field of its block
     */
    static long sequence(DirectBuffer buffer) {
        return buffer.getLong(Sbe.HEADER_LENGTH, ByteOrder.LITTLE_ENDIAN);
    }

    /**
     * @param m a message
     * @return its encoding, with sequence 0 (for join messages, and for tests)
     */
    public static byte[] encode(Message m) {
        ExpandableArrayBuffer out = new ExpandableArrayBuffer(256);
        int length = encode(m, 0, out);
        byte[] b = new byte[length];
        out.getBytes(0, b);
        return b;
    }

    /**
     * Writes a message, with its header, at offset 0.
     *
     * @param m        the message
     * @param sequence its sequence number, if it is {@link Message.Authenticated}
     * @param out      where to write (grows as needed)
     * @return the bytes written
     */
    public static int encode(Message m, long sequence, MutableDirectBuffer out) {
        MessageHeaderEncoder h = new MessageHeaderEncoder();
        return Sbe.HEADER_LENGTH + switch (m) {
            case Message.Hello x -> {
                byte[] name = utf8(x.name());
                byte[] endpoint = utf8(x.endpoint());
                byte[] shm = utf8(x.shmDirectory());
                int unpadded = Sbe.HEADER_LENGTH + HelloEncoder.BLOCK_LENGTH + 4 * STRING_HEADER + name.length
                        + endpoint.length + shm.length;
                byte[] padding = new byte[Math.max(0, MIN_HELLO_BYTES - unpadded)];
                yield new HelloEncoder().wrapAndApplyHeader(out, 0, h).protocolVersion(x.protocolVersion()).pid(x.pid())
                        .putCookie(x.cookie(), 0, 32).putName(name, 0, name.length)
                        .putEndpoint(endpoint, 0, endpoint.length).putShmDirectory(shm, 0, shm.length)
                        .putPadding(padding, 0, padding.length).encodedLength();
            }
            case Message.Challenge x -> new ChallengeEncoder().wrapAndApplyHeader(out, 0, h)
                    .putDriverNonce(x.driverNonce(), 0, 32).putCookie(x.cookie(), 0, 32).encodedLength();
            case Message.JoinResponse x -> {
                byte[] b = x.response().encode();
                out.putBytes(0, b);
                yield b.length - Sbe.HEADER_LENGTH;
            }
            case Message.Refused x -> {
                byte[] reason = utf8(x.reason());
                yield new RefusedEncoder().wrapAndApplyHeader(out, 0, h).putCookie(x.cookie(), 0, 32)
                        .putReason(reason, 0, reason.length).encodedLength();
            }
            case Message.Accept x -> {
                AcceptEncoder e = new AcceptEncoder().wrapAndApplyHeader(out, 0, h).sequence(sequence)
                        .putDriverNonce(x.driverNonce(), 0, 32).putProof(x.proof(), 0, 32).timeoutMs(x.timeoutMs())
                        .maxCallBytes(x.maxCallBytes());
                AcceptEncoder.ClassesEncoder c = e.classesCount(x.classes().size());
                for (String name : x.classes()) {
                    byte[] b = utf8(name);
                    c.next().putName(b, 0, b.length);
                }
                yield e.encodedLength();
            }
            case Message.Ready x -> new ReadyEncoder().wrapAndApplyHeader(out, 0, h).sequence(sequence).pid(x.pid())
                    .encodedLength();
            case Message.JoinFailed x -> {
                byte[] b = utf8(x.reason());
                yield new JoinFailedEncoder().wrapAndApplyHeader(out, 0, h).sequence(sequence).putReason(b, 0, b.length)
                        .encodedLength();
            }
            case Message.Heartbeat x -> new HeartbeatEncoder().wrapAndApplyHeader(out, 0, h).sequence(sequence)
                    .forged(x.forged()).replayed(x.replayed()).malformed(x.malformed()).encodedLength();
            case Message.Lost x -> {
                byte[] b = utf8(x.reason());
                yield new LostEncoder().wrapAndApplyHeader(out, 0, h).sequence(sequence).putReason(b, 0, b.length)
                        .encodedLength();
            }
            case Message.Shutdown x -> new ShutdownEncoder().wrapAndApplyHeader(out, 0, h).sequence(sequence)
                    .encodedLength();
            case Message.Left x -> {
                byte[] b = utf8(x.reason());
                yield new LeftEncoder().wrapAndApplyHeader(out, 0, h).sequence(sequence).putReason(b, 0, b.length)
                        .encodedLength();
            }
            case Message.CreateActor x -> {
                byte[] name = utf8(x.name() == null ? "" : x.name());
                yield new CreateActorEncoder().wrapAndApplyHeader(out, 0, h).sequence(sequence)
                        .correlation(x.correlation()).actorId(x.actorId()).gpu(x.gpu()).putName(name, 0, name.length)
                        .putFactory(x.factory(), 0, x.factory().length).encodedLength();
            }
            case Message.StopActor x -> new StopActorEncoder().wrapAndApplyHeader(out, 0, h).sequence(sequence)
                    .actorId(x.actorId()).encodedLength();
            case Message.Call x -> new CallEncoder().wrapAndApplyHeader(out, 0, h).sequence(sequence)
                    .correlation(x.correlation()).actorId(x.actorId()).arity(x.arity()).number(x.number())
                    .putMethod(x.method(), 0, x.method().length).putArguments(x.arguments(), 0, x.arguments().length)
                    .encodedLength();
            case Message.Prepare x -> encodePrepare(x, sequence, out, h);
            case Message.Start x -> new StartEncoder().wrapAndApplyHeader(out, 0, h).sequence(sequence)
                    .correlation(x.correlation()).graphId(x.graphId()).encodedLength();
            case Message.StopGraph x -> new StopGraphEncoder().wrapAndApplyHeader(out, 0, h).sequence(sequence)
                    .correlation(x.correlation()).graphId(x.graphId()).abort((short) (x.abort() ? 1 : 0)).encodedLength();
            case Message.CommunicatorId x -> new CommunicatorIdEncoder().wrapAndApplyHeader(out, 0, h)
                    .sequence(sequence).correlation(x.correlation()).encodedLength();
            case Message.Reply x -> {
                byte[] message = utf8(x.message());
                byte[] trace = utf8(x.stackTrace());
                yield new ReplyEncoder().wrapAndApplyHeader(out, 0, h).sequence(sequence).correlation(x.correlation())
                        .status(ReplyStatus.get((short) x.status().ordinal())).putMessage(message, 0, message.length)
                        .putStackTrace(trace, 0, trace.length).putValue(x.value(), 0, x.value().length)
                        .encodedLength();
            }
            case Message.ActorStarted x -> {
                byte[] c = utf8(x.className());
                byte[] n = utf8(x.actorName());
                byte[] u = utf8(x.deviceUuid());
                yield new ActorStartedEncoder().wrapAndApplyHeader(out, 0, h).sequence(sequence)
                        .correlation(x.correlation()).deviceFreeBytes(x.deviceFreeBytes()).putClassName(c, 0, c.length)
                        .putActorName(n, 0, n.length).putDeviceUuid(u, 0, u.length).encodedLength();
            }
            case Message.TaskFailed x -> {
                byte[] method = utf8(x.method());
                byte[] type = utf8(x.exceptionClass());
                byte[] message = utf8(x.message());
                byte[] trace = utf8(x.stackTrace());
                yield new TaskFailedEncoder().wrapAndApplyHeader(out, 0, h).sequence(sequence)
                        .correlation(x.correlation()).putMethod(method, 0, method.length)
                        .putExceptionClass(type, 0, type.length).putMessage(message, 0, message.length)
                        .putStackTrace(trace, 0, trace.length).encodedLength();
            }
            case Message.LoopDied x -> {
                byte[] b = utf8(x.cause());
                yield new LoopDiedEncoder().wrapAndApplyHeader(out, 0, h).sequence(sequence).graphId(x.graphId())
                        .actorId(x.actorId()).putCause(b, 0, b.length).encodedLength();
            }
            case Message.GraphFailed x -> {
                byte[] b = utf8(x.why());
                yield new GraphFailedEncoder().wrapAndApplyHeader(out, 0, h).sequence(sequence).graphId(x.graphId())
                        .putWhy(b, 0, b.length).encodedLength();
            }
        };
    }

    private static int encodePrepare(Message.Prepare x, long sequence, MutableDirectBuffer out,
                                     MessageHeaderEncoder h) {
        UdpSettings udp = x.udp();
        PrepareEncoder e = new PrepareEncoder().wrapAndApplyHeader(out, 0, h).sequence(sequence)
                .correlation(x.correlation()).graphId(x.graphId()).ncclJoinTimeoutNs(x.ncclJoinTimeoutNs())
                .udpStreamBase(udp == null ? 0 : udp.streamBase()).udpMtu(udp == null ? 0 : udp.mtuLength())
                .udpTermLength(udp == null ? 0 : udp.termLength()).udpPeerTimeoutNs(udp == null ? 0 : udp.peerTimeoutNs());
        PrepareEncoder.PeersEncoder p = e.peersCount(x.peers().size());
        for (Peer peer : x.peers()) {
            byte[] process = utf8(peer.process());
            byte[] host = utf8(peer.host());
            byte[] endpoint = utf8(peer.endpoint() == null ? "" : peer.endpoint());
            byte[] shm = utf8(peer.shmDirectory());
            p.next().pid(peer.pid()).putProcess(process, 0, process.length).putHost(host, 0, host.length)
                    .putEndpoint(endpoint, 0, endpoint.length).putShmDirectory(shm, 0, shm.length);
        }
        PrepareEncoder.CommunicatorsEncoder c = e.communicatorsCount(x.communicatorIds().size());
        for (byte[] id : x.communicatorIds()) {
            c.next().putId(id, 0, id.length);
        }
        byte[] name = utf8(x.graphName());
        byte[] key = udp == null || udp.dataKey() == null ? new byte[0] : udp.dataKey();
        return e.putGraphName(name, 0, name.length).putPlan(x.plan(), 0, x.plan().length)
                .putOptions(x.options(), 0, x.options().length).putDataKey(key, 0, key.length).encodedLength();
    }

    /**
     * Writes a {@link Chunk} frame: a part of a message larger than one control frame.
     *
     * @param sequence    its sequence number
     * @param totalLength the whole message's length
     * @param offset      where this part starts in it
     * @param source      holds the whole message
     * @param length      bytes in this part
     * @param out         where to write, at offset 0
     * @return the bytes written
     */
    static int encodeChunk(long sequence, long totalLength, long offset, DirectBuffer source, int length,
                           MutableDirectBuffer out) {
        return Sbe.HEADER_LENGTH + new ChunkEncoder().wrapAndApplyHeader(out, 0, new MessageHeaderEncoder())
                .sequence(sequence).totalLength(totalLength).chunkOffset(offset)
                .putBytes(source, (int) offset, length).encodedLength();
    }

    /**
     * A part of a message larger than one control frame.
     *
     * @param totalLength the whole message's length
     * @param offset      where this part starts
     * @param bytes       this part
     */
    record Chunk(long totalLength, long offset, byte[] bytes) {
    }

    /**
     * Reads a {@link Chunk} frame.
     *
     * @param buffer holds exactly the frame, without its MAC, at offset 0
     * @param length its length
     * @return the part
     * @throws IllegalArgumentException if it is malformed
     */
    static Chunk decodeChunk(DirectBuffer buffer, int length) {
        try {
            Sbe.checkBlock(buffer, 0, length, ChunkDecoder.BLOCK_LENGTH, "Chunk");
            ChunkDecoder d = new ChunkDecoder().wrap(buffer, Sbe.HEADER_LENGTH, ChunkDecoder.BLOCK_LENGTH,
                    ChunkDecoder.SCHEMA_VERSION);
            long total = d.totalLength();
            long offset = d.chunkOffset();
            byte[] bytes = data(d.bytesLength(), d.limit(), length, "chunk");
            d.getBytes(bytes, 0, bytes.length);
            Sbe.expectEnd(d.limit(), length, "Chunk");
            if (total < 0 || offset < 0 || offset + bytes.length > total) {
                throw new IllegalArgumentException("a chunk of " + bytes.length + " bytes at " + offset
                        + " of a message of " + total + " bytes");
            }
            return new Chunk(total, offset, bytes);
        } catch (IndexOutOfBoundsException e) {
            throw new IllegalArgumentException("a truncated Chunk of " + length + " bytes", e);
        }
    }

    /**
     * Decodes one message as received from another process.
     *
     * @param buffer holds exactly the message (no MAC) at offset 0; reads past {@code length} must fail
     * @param length its length
     * @return the message
     * @throws IllegalArgumentException if it is not exactly one well-formed message of the schema (a {@link Chunk}
     *                                  frame is not a message: {@link ControlLink} reads those)
     */
    public static Message decode(DirectBuffer buffer, int length) {
        int template = Sbe.templateId(buffer, 0, length);
        try {
            return switch (template) {
                case HelloDecoder.TEMPLATE_ID -> {
                    Sbe.checkBlock(buffer, 0, length, HelloDecoder.BLOCK_LENGTH, "Hello");
                    HelloDecoder d = new HelloDecoder().wrap(buffer, Sbe.HEADER_LENGTH, HelloDecoder.BLOCK_LENGTH,
                            HelloDecoder.SCHEMA_VERSION);
                    int version = d.protocolVersion();
                    long pid = d.pid();
                    byte[] cookie = bytes32(d::getCookie);
                    String name = string(d.nameLength(), d.limit(), length, "worker name", d::getName);
                    String endpoint = string(d.endpointLength(), d.limit(), length, "endpoint", d::getEndpoint);
                    String shm = string(d.shmDirectoryLength(), d.limit(), length, "shared-memory directory",
                            d::getShmDirectory);
                    Sbe.varLength(d.paddingLength(), d.limit(), STRING_HEADER, length, 65535, "padding");
                    d.skipPadding();
                    Sbe.expectEnd(d.limit(), length, "Hello");
                    yield new Message.Hello(version, pid, cookie, name, endpoint, shm);
                }
                case ChallengeDecoder.TEMPLATE_ID -> {
                    Sbe.checkBlock(buffer, 0, length, ChallengeDecoder.BLOCK_LENGTH, "Challenge");
                    ChallengeDecoder d = new ChallengeDecoder().wrap(buffer, Sbe.HEADER_LENGTH,
                            ChallengeDecoder.BLOCK_LENGTH, ChallengeDecoder.SCHEMA_VERSION);
                    Sbe.expectEnd(d.limit(), length, "Challenge");
                    yield new Message.Challenge(bytes32(d::getDriverNonce), bytes32(d::getCookie));
                }
                case dev.kiln.transport.control.ResponseDecoder.TEMPLATE_ID -> {
                    byte[] b = new byte[length];
                    buffer.getBytes(0, b);
                    yield new Message.JoinResponse(JoinHandshake.Response.decode(b));
                }
                case RefusedDecoder.TEMPLATE_ID -> {
                    Sbe.checkBlock(buffer, 0, length, RefusedDecoder.BLOCK_LENGTH, "Refused");
                    RefusedDecoder d = new RefusedDecoder().wrap(buffer, Sbe.HEADER_LENGTH, RefusedDecoder.BLOCK_LENGTH,
                            RefusedDecoder.SCHEMA_VERSION);
                    byte[] cookie = bytes32(d::getCookie);
                    String reason = string(d.reasonLength(), d.limit(), length, "reason", d::getReason);
                    Sbe.expectEnd(d.limit(), length, "Refused");
                    yield new Message.Refused(cookie, reason);
                }
                case AcceptDecoder.TEMPLATE_ID -> {
                    Sbe.checkBlock(buffer, 0, length, AcceptDecoder.BLOCK_LENGTH, "Accept");
                    AcceptDecoder d = new AcceptDecoder().wrap(buffer, Sbe.HEADER_LENGTH, AcceptDecoder.BLOCK_LENGTH,
                            AcceptDecoder.SCHEMA_VERSION);
                    byte[] nonce = bytes32(d::getDriverNonce);
                    byte[] proof = bytes32(d::getProof);
                    long timeoutMs = d.timeoutMs();
                    long maxCallBytes = d.maxCallBytes();
                    AcceptDecoder.ClassesDecoder c = d.classes();
                    Sbe.checkGroup(c.actingBlockLength(), AcceptDecoder.ClassesDecoder.sbeBlockLength(), "classes");
                    List<String> classes = new ArrayList<>(c.count());
                    while (c.hasNext()) {
                        c.next();
                        classes.add(string(c.nameLength(), d.limit(), length, "class name", c::getName));
                    }
                    Sbe.expectEnd(d.limit(), length, "Accept");
                    yield new Message.Accept(nonce, proof, timeoutMs, maxCallBytes, classes);
                }
                case ReadyDecoder.TEMPLATE_ID -> {
                    Sbe.checkBlock(buffer, 0, length, ReadyDecoder.BLOCK_LENGTH, "Ready");
                    ReadyDecoder d = new ReadyDecoder().wrap(buffer, Sbe.HEADER_LENGTH, ReadyDecoder.BLOCK_LENGTH,
                            ReadyDecoder.SCHEMA_VERSION);
                    Sbe.expectEnd(d.limit(), length, "Ready");
                    yield new Message.Ready(d.pid());
                }
                case JoinFailedDecoder.TEMPLATE_ID -> {
                    Sbe.checkBlock(buffer, 0, length, JoinFailedDecoder.BLOCK_LENGTH, "JoinFailed");
                    JoinFailedDecoder d = new JoinFailedDecoder().wrap(buffer, Sbe.HEADER_LENGTH,
                            JoinFailedDecoder.BLOCK_LENGTH, JoinFailedDecoder.SCHEMA_VERSION);
                    String reason = text(d.reasonLength(), d.limit(), length, "reason", d::getReason);
                    Sbe.expectEnd(d.limit(), length, "JoinFailed");
                    yield new Message.JoinFailed(reason);
                }
                case HeartbeatDecoder.TEMPLATE_ID -> {
                    Sbe.checkBlock(buffer, 0, length, HeartbeatDecoder.BLOCK_LENGTH, "Heartbeat");
                    HeartbeatDecoder d = new HeartbeatDecoder().wrap(buffer, Sbe.HEADER_LENGTH,
                            HeartbeatDecoder.BLOCK_LENGTH, HeartbeatDecoder.SCHEMA_VERSION);
                    Sbe.expectEnd(d.limit(), length, "Heartbeat");
                    yield new Message.Heartbeat(d.forged(), d.replayed(), d.malformed());
                }
                case LostDecoder.TEMPLATE_ID -> {
                    Sbe.checkBlock(buffer, 0, length, LostDecoder.BLOCK_LENGTH, "Lost");
                    LostDecoder d = new LostDecoder().wrap(buffer, Sbe.HEADER_LENGTH, LostDecoder.BLOCK_LENGTH,
                            LostDecoder.SCHEMA_VERSION);
                    String reason = text(d.reasonLength(), d.limit(), length, "reason", d::getReason);
                    Sbe.expectEnd(d.limit(), length, "Lost");
                    yield new Message.Lost(reason);
                }
                case ShutdownDecoder.TEMPLATE_ID -> {
                    Sbe.checkBlock(buffer, 0, length, ShutdownDecoder.BLOCK_LENGTH, "Shutdown");
                    Sbe.expectEnd(Sbe.HEADER_LENGTH + ShutdownDecoder.BLOCK_LENGTH, length, "Shutdown");
                    yield new Message.Shutdown();
                }
                case LeftDecoder.TEMPLATE_ID -> {
                    Sbe.checkBlock(buffer, 0, length, LeftDecoder.BLOCK_LENGTH, "Left");
                    LeftDecoder d = new LeftDecoder().wrap(buffer, Sbe.HEADER_LENGTH, LeftDecoder.BLOCK_LENGTH,
                            LeftDecoder.SCHEMA_VERSION);
                    String reason = text(d.reasonLength(), d.limit(), length, "reason", d::getReason);
                    Sbe.expectEnd(d.limit(), length, "Left");
                    yield new Message.Left(reason);
                }
                case CreateActorDecoder.TEMPLATE_ID -> {
                    Sbe.checkBlock(buffer, 0, length, CreateActorDecoder.BLOCK_LENGTH, "CreateActor");
                    CreateActorDecoder d = new CreateActorDecoder().wrap(buffer, Sbe.HEADER_LENGTH,
                            CreateActorDecoder.BLOCK_LENGTH, CreateActorDecoder.SCHEMA_VERSION);
                    long correlation = d.correlation();
                    int actorId = d.actorId();
                    int gpu = d.gpu();
                    String name = string(d.nameLength(), d.limit(), length, "actor name", d::getName);
                    byte[] factory = data(d.factoryLength(), d.limit(), length, "factory");
                    d.getFactory(factory, 0, factory.length);
                    Sbe.expectEnd(d.limit(), length, "CreateActor");
                    yield new Message.CreateActor(correlation, actorId, gpu, name.isEmpty() ? null : name, factory);
                }
                case StopActorDecoder.TEMPLATE_ID -> {
                    Sbe.checkBlock(buffer, 0, length, StopActorDecoder.BLOCK_LENGTH, "StopActor");
                    StopActorDecoder d = new StopActorDecoder().wrap(buffer, Sbe.HEADER_LENGTH,
                            StopActorDecoder.BLOCK_LENGTH, StopActorDecoder.SCHEMA_VERSION);
                    Sbe.expectEnd(d.limit(), length, "StopActor");
                    yield new Message.StopActor(d.actorId());
                }
                case CallDecoder.TEMPLATE_ID -> {
                    Sbe.checkBlock(buffer, 0, length, CallDecoder.BLOCK_LENGTH, "Call");
                    CallDecoder d = new CallDecoder().wrap(buffer, Sbe.HEADER_LENGTH, CallDecoder.BLOCK_LENGTH,
                            CallDecoder.SCHEMA_VERSION);
                    long correlation = d.correlation();
                    int actorId = d.actorId();
                    int arity = d.arity();
                    long number = d.number();
                    byte[] method = data(d.methodLength(), d.limit(), length, "method");
                    d.getMethod(method, 0, method.length);
                    byte[] arguments = data(d.argumentsLength(), d.limit(), length, "arguments");
                    d.getArguments(arguments, 0, arguments.length);
                    Sbe.expectEnd(d.limit(), length, "Call");
                    yield new Message.Call(correlation, actorId, arity, number, method, arguments);
                }
                case PrepareDecoder.TEMPLATE_ID -> decodePrepare(buffer, length);
                case StartDecoder.TEMPLATE_ID -> {
                    Sbe.checkBlock(buffer, 0, length, StartDecoder.BLOCK_LENGTH, "Start");
                    StartDecoder d = new StartDecoder().wrap(buffer, Sbe.HEADER_LENGTH, StartDecoder.BLOCK_LENGTH,
                            StartDecoder.SCHEMA_VERSION);
                    Sbe.expectEnd(d.limit(), length, "Start");
                    yield new Message.Start(d.correlation(), d.graphId());
                }
                case StopGraphDecoder.TEMPLATE_ID -> {
                    Sbe.checkBlock(buffer, 0, length, StopGraphDecoder.BLOCK_LENGTH, "StopGraph");
                    StopGraphDecoder d = new StopGraphDecoder().wrap(buffer, Sbe.HEADER_LENGTH,
                            StopGraphDecoder.BLOCK_LENGTH, StopGraphDecoder.SCHEMA_VERSION);
                    Sbe.expectEnd(d.limit(), length, "StopGraph");
                    short abort = d.abort();
                    if (abort != 0 && abort != 1) {
                        throw new IllegalArgumentException("StopGraph's abort is 0 or 1, got " + abort);
                    }
                    yield new Message.StopGraph(d.correlation(), d.graphId(), abort == 1);
                }
                case CommunicatorIdDecoder.TEMPLATE_ID -> {
                    Sbe.checkBlock(buffer, 0, length, CommunicatorIdDecoder.BLOCK_LENGTH, "CommunicatorId");
                    CommunicatorIdDecoder d = new CommunicatorIdDecoder().wrap(buffer, Sbe.HEADER_LENGTH,
                            CommunicatorIdDecoder.BLOCK_LENGTH, CommunicatorIdDecoder.SCHEMA_VERSION);
                    Sbe.expectEnd(d.limit(), length, "CommunicatorId");
                    yield new Message.CommunicatorId(d.correlation());
                }
                case ReplyDecoder.TEMPLATE_ID -> {
                    Sbe.checkBlock(buffer, 0, length, ReplyDecoder.BLOCK_LENGTH, "Reply");
                    ReplyDecoder d = new ReplyDecoder().wrap(buffer, Sbe.HEADER_LENGTH, ReplyDecoder.BLOCK_LENGTH,
                            ReplyDecoder.SCHEMA_VERSION);
                    long correlation = d.correlation();
                    short raw = d.statusRaw();
                    if (raw < 0 || raw >= Message.Status.values().length) {
                        throw new IllegalArgumentException("a reply status of " + raw);
                    }
                    String message = text(d.messageLength(), d.limit(), length, "message", d::getMessage);
                    String trace = text(d.stackTraceLength(), d.limit(), length, "stack trace", d::getStackTrace);
                    byte[] value = data(d.valueLength(), d.limit(), length, "value");
                    d.getValue(value, 0, value.length);
                    Sbe.expectEnd(d.limit(), length, "Reply");
                    yield new Message.Reply(correlation, Message.Status.values()[raw], message, trace, value);
                }
                case ActorStartedDecoder.TEMPLATE_ID -> {
                    Sbe.checkBlock(buffer, 0, length, ActorStartedDecoder.BLOCK_LENGTH, "ActorStarted");
                    ActorStartedDecoder d = new ActorStartedDecoder().wrap(buffer, Sbe.HEADER_LENGTH,
                            ActorStartedDecoder.BLOCK_LENGTH, ActorStartedDecoder.SCHEMA_VERSION);
                    long correlation = d.correlation();
                    long free = d.deviceFreeBytes();
                    String className = string(d.classNameLength(), d.limit(), length, "class name", d::getClassName);
                    String actorName = string(d.actorNameLength(), d.limit(), length, "actor name", d::getActorName);
                    String uuid = string(d.deviceUuidLength(), d.limit(), length, "device uuid", d::getDeviceUuid);
                    Sbe.expectEnd(d.limit(), length, "ActorStarted");
                    yield new Message.ActorStarted(correlation, className, actorName, uuid, free);
                }
                case TaskFailedDecoder.TEMPLATE_ID -> {
                    Sbe.checkBlock(buffer, 0, length, TaskFailedDecoder.BLOCK_LENGTH, "TaskFailed");
                    TaskFailedDecoder d = new TaskFailedDecoder().wrap(buffer, Sbe.HEADER_LENGTH,
                            TaskFailedDecoder.BLOCK_LENGTH, TaskFailedDecoder.SCHEMA_VERSION);
                    long correlation = d.correlation();
                    String method = string(d.methodLength(), d.limit(), length, "method", d::getMethod);
                    String type = string(d.exceptionClassLength(), d.limit(), length, "exception class",
                            d::getExceptionClass);
                    String message = text(d.messageLength(), d.limit(), length, "message", d::getMessage);
                    String trace = text(d.stackTraceLength(), d.limit(), length, "stack trace", d::getStackTrace);
                    Sbe.expectEnd(d.limit(), length, "TaskFailed");
                    yield new Message.TaskFailed(correlation, method, type, message, trace);
                }
                case LoopDiedDecoder.TEMPLATE_ID -> {
                    Sbe.checkBlock(buffer, 0, length, LoopDiedDecoder.BLOCK_LENGTH, "LoopDied");
                    LoopDiedDecoder d = new LoopDiedDecoder().wrap(buffer, Sbe.HEADER_LENGTH,
                            LoopDiedDecoder.BLOCK_LENGTH, LoopDiedDecoder.SCHEMA_VERSION);
                    long graph = d.graphId();
                    int actor = d.actorId();
                    String cause = text(d.causeLength(), d.limit(), length, "cause", d::getCause);
                    Sbe.expectEnd(d.limit(), length, "LoopDied");
                    yield new Message.LoopDied(graph, actor, cause);
                }
                case GraphFailedDecoder.TEMPLATE_ID -> {
                    Sbe.checkBlock(buffer, 0, length, GraphFailedDecoder.BLOCK_LENGTH, "GraphFailed");
                    GraphFailedDecoder d = new GraphFailedDecoder().wrap(buffer, Sbe.HEADER_LENGTH,
                            GraphFailedDecoder.BLOCK_LENGTH, GraphFailedDecoder.SCHEMA_VERSION);
                    long graph = d.graphId();
                    String why = text(d.whyLength(), d.limit(), length, "why", d::getWhy);
                    Sbe.expectEnd(d.limit(), length, "GraphFailed");
                    yield new Message.GraphFailed(graph, why);
                }
                default -> throw new IllegalArgumentException("control message template " + template
                        + " is not one of this protocol's messages");
            };
        } catch (IndexOutOfBoundsException e) {
            throw new IllegalArgumentException("a truncated control message (template " + template + ", " + length
                    + " bytes)", e);
        }
    }

    private static Message.Prepare decodePrepare(DirectBuffer buffer, int length) {
        Sbe.checkBlock(buffer, 0, length, PrepareDecoder.BLOCK_LENGTH, "Prepare");
        PrepareDecoder d = new PrepareDecoder().wrap(buffer, Sbe.HEADER_LENGTH, PrepareDecoder.BLOCK_LENGTH,
                PrepareDecoder.SCHEMA_VERSION);
        long correlation = d.correlation();
        long graphId = d.graphId();
        long ncclJoinTimeoutNs = d.ncclJoinTimeoutNs();
        int mtu = d.udpMtu();
        if (mtu == 0 && (d.udpStreamBase() != 0 || d.udpTermLength() != 0 || d.udpPeerTimeoutNs() != 0)) {
            throw new IllegalArgumentException("a Prepare without UDP channels (MTU 0) with other UDP settings");
        }
        PrepareDecoder.PeersDecoder p = d.peers();
        Sbe.checkGroup(p.actingBlockLength(), PrepareDecoder.PeersDecoder.sbeBlockLength(), "peers");
        List<Peer> peers = new ArrayList<>(p.count());
        while (p.hasNext()) {
            p.next();
            long pid = p.pid();
            String process = string(p.processLength(), d.limit(), length, "process", p::getProcess);
            String host = string(p.hostLength(), d.limit(), length, "host", p::getHost);
            String endpoint = string(p.endpointLength(), d.limit(), length, "endpoint", p::getEndpoint);
            String shm = string(p.shmDirectoryLength(), d.limit(), length, "shared-memory directory",
                    p::getShmDirectory);
            peers.add(new Peer(process, pid, host, endpoint.isEmpty() ? null : endpoint, shm));
        }
        PrepareDecoder.CommunicatorsDecoder c = d.communicators();
        Sbe.checkGroup(c.actingBlockLength(), PrepareDecoder.CommunicatorsDecoder.sbeBlockLength(), "communicators");
        if (c.count() > MAX_COMMUNICATORS) {
            throw new IllegalArgumentException("a plan has 0 to " + MAX_COMMUNICATORS + " communicators, got "
                    + c.count());
        }
        List<byte[]> ids = new ArrayList<>(c.count());
        while (c.hasNext()) {
            c.next();
            byte[] id = new byte[Sbe.varLength(c.idLength(), d.limit(), STRING_HEADER, length, 65535, "communicator id")];
            c.getId(id, 0, id.length);
            ids.add(id);
        }
        String name = string(d.graphNameLength(), d.limit(), length, "graph name", d::getGraphName);
        byte[] plan = data(d.planLength(), d.limit(), length, "plan");
        d.getPlan(plan, 0, plan.length);
        byte[] options = data(d.optionsLength(), d.limit(), length, "options");
        d.getOptions(options, 0, options.length);
        byte[] key = new byte[Sbe.varLength(d.dataKeyLength(), d.limit(), STRING_HEADER, length, 65535,
                "data key")];
        d.getDataKey(key, 0, key.length);
        Sbe.expectEnd(d.limit(), length, "Prepare");
        if (key.length != 0 && (key.length < AeronUdpChannel.MIN_KEY_BYTES || key.length > MAX_KEY_BYTES)) {
            throw new IllegalArgumentException("a graph's data key of " + key.length + " bytes; keys have "
                    + AeronUdpChannel.MIN_KEY_BYTES + " to " + MAX_KEY_BYTES);
        }
        if (key.length != 0 && mtu == 0) {
            throw new IllegalArgumentException("a Prepare with a data key but without UDP channels (MTU 0)");
        }
        UdpSettings udp = mtu == 0 ? null : new UdpSettings(d.udpStreamBase(), mtu, d.udpTermLength(),
                d.udpPeerTimeoutNs(), key.length == 0 ? null : key);
        return new Message.Prepare(correlation, graphId, name, plan, options, udp, peers, ids, ncclJoinTimeoutNs);
    }

    /** A generated getter of variable-length bytes. */
    private interface Getter {
        int get(byte[] dst, int offset, int length);
    }

    private static byte[] bytes32(Getter getter) {
        byte[] b = new byte[32];
        getter.get(b, 0, 32);
        return b;
    }

    private static String string(int announced, int limit, int end, String what, Getter getter) {
        byte[] b = new byte[Sbe.varLength(announced, limit, STRING_HEADER, end, 65535, what)];
        getter.get(b, 0, b.length);
        return Sbe.utf8(b, what);
    }

    private static String text(int announced, int limit, int end, String what, Getter getter) {
        byte[] b = data(announced, limit, end, what);
        getter.get(b, 0, b.length);
        return Sbe.utf8(b, what);
    }

    private static byte[] data(int announced, int limit, int end, String what) {
        return new byte[Sbe.varLength(announced, limit, DATA_HEADER, end, Integer.MAX_VALUE, what)];
    }

    private static byte[] utf8(String s) {
        return s.getBytes(StandardCharsets.UTF_8);
    }

    /**
     * @param bytes a received message
     * @return a buffer over exactly those bytes, so that any read past them fails
     */
    static UnsafeBuffer exact(byte[] bytes) {
        return new UnsafeBuffer(bytes);
    }
}
