package dev.kiln.executor;

import dev.kiln.transport.JoinHandshake;

import java.util.List;

/**
 * The messages of Kiln's control plane between a driver and its workers (child JVMs over Aeron IPC, joined
 * workers over Aeron UDP), as Java values. Their wire form is defined once, in the SBE schema
 * {@code transports/src/main/sbe/kiln-control.xml}; {@link ControlCodec} encodes and decodes them. The join
 * messages ({@link Hello}, {@link Challenge}, {@link JoinResponse}, {@link Refused}) travel before any key
 * exists; every {@link Authenticated} message after them carries a sequence number and a MAC
 * ({@link ControlLink}). Requests carry a correlation id that their answer repeats. Immutable (byte arrays
 * are not copied: do not change them).
 */
public sealed interface Message {

    /** A message after the join: sent with a sequence number and a MAC. */
    sealed interface Authenticated extends Message {
    }

    /** A request of the driver that the worker answers with an {@link Answer} of the same correlation id. */
    sealed interface Request extends Authenticated {
        /** @return the id the answer repeats */
        long correlation();
    }

    /** The worker's answer to a {@link Request}. */
    sealed interface Answer extends Authenticated {
        /** @return the request's correlation id */
        long correlation();
    }

    /** How a request went. */
    enum Status {
        /** Done; a {@link Reply}'s value holds the result, if any. */
        OK,
        /** Refused or failed; the message says why. */
        FAILED,
        /** The actor is dead; the message says why. */
        DIED
    }

    /**
     * Joining worker to driver, first: who it is. Padded on the wire to {@link ControlCodec#MIN_HELLO_BYTES}, so
     * that nothing the driver answers before the worker proved the secret is larger.
     *
     * @param protocolVersion the worker's {@link ControlPlane#PROTOCOL_VERSION}
     * @param pid             its process id
     * @param cookie          32 random bytes that the driver's answers repeat
     * @param name            its name
     * @param endpoint        {@code address:port} where it receives UDP; empty over IPC
     * @param shmDirectory    its host's shared-memory directory
     */
    record Hello(int protocolVersion, long pid, byte[] cookie, String name, String endpoint, String shmDirectory)
            implements Message {
    }

    /**
     * Driver to joining worker: a fresh nonce to answer.
     *
     * @param driverNonce the challenge
     * @param cookie      the hello's cookie
     */
    record Challenge(byte[] driverNonce, byte[] cookie) implements Message {
    }

    /**
     * Joining worker to driver: its answer to a challenge.
     *
     * @param response the handshake's response
     */
    record JoinResponse(JoinHandshake.Response response) implements Message {
    }

    /**
     * Driver to joining worker: the join failed.
     *
     * @param cookie the hello's cookie
     * @param reason why
     */
    record Refused(byte[] cookie, String reason) implements Message {
    }

    /**
     * Driver to worker, the first authenticated message: the driver's proof, its limits and the value classes to
     * register.
     *
     * @param driverNonce  the challenge the worker answered
     * @param proof        the driver's proof that it knows the secret
     * @param timeoutMs    how long the driver lets a worker stay silent
     * @param maxCallBytes the largest dynamic-call argument or result ({@code KilnOptions.maxCallBytes})
     * @param classes      binary names of the classes to register
     */
    record Accept(byte[] driverNonce, byte[] proof, long timeoutMs, long maxCallBytes, List<String> classes)
            implements Authenticated {
    }

    /**
     * Worker to driver: it registered the classes and serves.
     *
     * @param pid its process id
     */
    record Ready(long pid) implements Authenticated {
    }

    /**
     * Worker to driver: it gives up joining.
     *
     * @param reason why
     */
    record JoinFailed(String reason) implements Authenticated {
    }

    /**
     * Either way: alive; with the sender's counts of control messages it dropped.
     *
     * @param forged    dropped for a wrong MAC or an unknown sender
     * @param replayed  dropped for a sequence number not above the last accepted
     * @param malformed dropped as undecodable
     */
    record Heartbeat(long forged, long replayed, long malformed) implements Authenticated {
    }

    /**
     * Driver to worker: the driver declared the worker lost; it must stop its actors and leave.
     *
     * @param reason why
     */
    record Lost(String reason) implements Authenticated {
    }

    /** Driver to worker: stop the actors and leave. */
    record Shutdown() implements Authenticated {
    }

    /**
     * Worker to driver: it stopped its actors and leaves.
     *
     * @param reason why
     */
    record Left(String reason) implements Authenticated {
    }

    /**
     * Driver to worker: create an actor.
     *
     * @param correlation the request's id
     * @param actorId     the actor's id
     * @param gpu         its GPU ordinal, or {@code ActorOptions.NO_GPU}
     * @param name        its name, or null for a generated one
     * @param factory     the factory, as {@link Codecs#lambdaBytes}
     */
    record CreateActor(long correlation, int actorId, int gpu, String name, byte[] factory) implements Request {
    }

    /**
     * Driver to worker: end an actor's thread; later calls to it fail.
     *
     * @param actorId the actor's id
     */
    record StopActor(int actorId) implements Authenticated {
    }

    /**
     * Driver to worker: a dynamic call.
     *
     * @param correlation the request's id
     * @param actorId     the actor's id
     * @param arity       the method's arity
     * @param number      the call's number on that actor
     * @param method      the method reference, as {@link Codecs#lambdaBytes}
     * @param arguments   the arguments, as {@link Codecs#valueBytes} of an {@code Object[]}
     */
    record Call(long correlation, int actorId, int arity, long number, byte[] method, byte[] arguments)
            implements Request {
    }

    /**
     * Driver to worker: create the channels of a graph that this worker writes.
     *
     * @param correlation       the request's id
     * @param graphId           the graph's id
     * @param graphName         its name
     * @param plan              the plan, as {@link Codecs#planBytes}
     * @param options           its compile options, as {@link Codecs#optionsBytes}
     * @param udp               its UDP layout, or null when it has no UDP channel
     * @param peers             every process of the graph
     * @param communicatorIds   the ids of its NCCL communicators
     * @param ncclJoinTimeoutNs how long joining them may take
     */
    record Prepare(long correlation, long graphId, String graphName, byte[] plan, byte[] options, UdpSettings udp,
                   List<Peer> peers, List<byte[]> communicatorIds, long ncclJoinTimeoutNs) implements Request {
    }

    /**
     * Driver to worker: map the channels of a prepared graph that this worker reads and start its loops.
     *
     * @param correlation the request's id
     * @param graphId     the graph's id
     */
    record Start(long correlation, long graphId) implements Request {
    }

    /**
     * Driver to worker: stop a graph's part here.
     *
     * @param correlation the request's id
     * @param graphId     the graph's id
     * @param abort       whether a peer of the graph died (NCCL communicators are aborted, not finished)
     */
    record StopGraph(long correlation, long graphId, boolean abort) implements Request {
    }

    /**
     * Driver to worker: make an NCCL communicator id in the worker's process.
     *
     * @param correlation the request's id
     */
    record CommunicatorId(long correlation) implements Request {
    }

    /**
     * Worker to driver: the answer to a request.
     *
     * @param correlation the request's id
     * @param status      how it went
     * @param message     why it failed, or empty
     * @param stackTrace  a remote stack trace, or empty
     * @param value       the result's bytes, or empty
     */
    record Reply(long correlation, Status status, String message, String stackTrace, byte[] value) implements Answer {
    }

    /**
     * Worker to driver: an actor was created.
     *
     * @param correlation     the request's id
     * @param className       the actor's class
     * @param actorName       its name
     * @param deviceUuid      its GPU's UUID, or empty
     * @param deviceFreeBytes its GPU's free memory once the factory returned, or -1
     */
    record ActorStarted(long correlation, String className, String actorName, String deviceUuid, long deviceFreeBytes)
            implements Answer {
    }

    /**
     * Worker to driver: the user's method of a dynamic call threw.
     *
     * @param correlation    the request's id
     * @param method         the method
     * @param exceptionClass the exception's class
     * @param message        its message, or empty
     * @param stackTrace     its stack trace
     */
    record TaskFailed(long correlation, String method, String exceptionClass, String message, String stackTrace)
            implements Answer {
    }

    /**
     * Worker to driver: a graph loop died of an error its actor could not survive.
     *
     * @param graphId the graph's id
     * @param actorId the actor's id
     * @param cause   what it died of
     */
    record LoopDied(long graphId, int actorId, String cause) implements Authenticated {
    }

    /**
     * Worker to driver: a graph lost a peer in another JVM; its actors live on.
     *
     * @param graphId the graph's id
     * @param why     what was lost
     */
    record GraphFailed(long graphId, String why) implements Authenticated {
    }
}
