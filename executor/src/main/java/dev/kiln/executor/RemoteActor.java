package dev.kiln.executor;

import dev.kiln.ActorDiedException;
import dev.kiln.ActorTaskException;
import dev.kiln.RemoteActorException;
import dev.kiln.graph.MethodRef;
import dev.kiln.transport.RemoteError;
import dev.kiln.transport.ValueCodec;

import java.io.Serializable;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.Executor;

/**
 * The driver's record of an actor that lives in a worker JVM: which worker, and which graphs
 * hold it. The actor itself, its thread and its loops live in the worker; a dynamic call travels
 * to it in a control message. Thread-safe.
 */
public final class RemoteActor implements ActorHandle {

    /** Where remote calls' answers are decoded and their futures completed: a virtual thread each. */
    private static final Executor COMPLETIONS = task -> Thread.ofVirtual().name("kiln-call").start(task);

    private final int id;
    private final String name;
    private final RemoteHost worker;
    private final ValueCodec codec;
    private final long maxCallBytes;
    private final Holders holders = new Holders();
    private volatile String death;

    /**
     * @param id           the actor's id
     * @param name         the actor's name
     * @param worker       the worker JVM hosting it
     * @param codec        the runtime's codec, for the calls' methods, arguments and results
     * @param maxCallBytes how many bytes a dynamic call may carry ({@code KilnOptions.maxCallBytes})
     */
    public RemoteActor(int id, String name, RemoteHost worker, ValueCodec codec, long maxCallBytes) {
        this.id = id;
        this.name = name;
        this.worker = worker;
        this.codec = codec;
        this.maxCallBytes = maxCallBytes;
    }

    @Override
    public int id() {
        return id;
    }

    @Override
    public String name() {
        return name;
    }

    /** @return the worker JVM hosting it */
    public RemoteHost worker() {
        return worker;
    }

    /** @return why the actor is dead (its worker ended, or a loop died of an error), or null while it lives */
    @Override
    public String deathReason() {
        String d = death;
        return d != null ? d : worker.death();
    }

    /** @param why why the actor died; the first reason is kept */
    public void died(String why) {
        if (death == null) {
            death = why;
        }
    }

    @Override
    public Holders holders() {
        return holders;
    }


    @Override
    public void requestStop() {
        worker.stopActor(id);
    }

    /** The method and arguments travel in a control message; the answer is decoded on a virtual thread. */
    @Override
    @SuppressWarnings("unchecked")
    public <R> CompletableFuture<R> call(Serializable method, int arity, Object[] args, long number) {
        CompletableFuture<R> result = new CompletableFuture<>();
        String death = deathReason();
        if (death != null) {
            result.completeExceptionally(new ActorDiedException("actor " + name + " is dead: " + death));
            return result;
        }
        byte[] function = Codecs.lambdaBytes(method, codec);
        byte[] arguments;
        try {
            arguments = Codecs.valueBytes(args, codec);
        } catch (IllegalArgumentException e) {
            throw new IllegalArgumentException("cannot send the arguments of a call to actor " + name
                    + " in worker JVM " + worker.name() + ": " + GraphLoop.explain(e), e);
        }
        if ((long) arguments.length + function.length > maxCallBytes) {
            throw new IllegalArgumentException("the arguments of call #" + number + " to actor " + name
                    + " take " + arguments.length + " bytes and the method with what it captured " + function.length
                    + ", more than the " + maxCallBytes + " a dynamic call may carry"
                    + " (KilnOptions.maxCallBytes): raise it, or pass large values through a compiled graph");
        }
        String methodName = MethodRef.of(method, arity).displayName();
        // Decoded, and the caller's future completed, on a thread of its own: never on the control plane's receiving
        // thread, which callers' continuations (thenAccept, join) would otherwise block, heartbeats with it.
        worker.request(c -> new Message.Call(c, id, arity, number, function, arguments))
                .whenCompleteAsync((answer, error) -> {
            if (error instanceof RemoteHost.WorkerDeathException) {
                result.completeExceptionally(new ActorDiedException("actor " + name + " died before call #"
                        + number + " returned: " + error.getMessage(), error));
                return;
            }
            if (error != null) {
                // The actor lives: the call could not be sent (the control stream stayed back-pressured, say).
                result.completeExceptionally(new ActorTaskException(name, methodName, number, error));
                return;
            }
            try {
                switch (answer) {
                    case Message.Reply r when r.status() == Message.Status.OK ->
                            result.complete((R) Codecs.value(r.value(), codec));
                    case Message.Reply r when r.status() == Message.Status.DIED ->
                            result.completeExceptionally(new ActorDiedException("actor " + name
                                    + " died before running call #" + number + ": " + r.message()));
                    case Message.Reply r -> result.completeExceptionally(new ActorTaskException(name, methodName,
                            number, new IllegalStateException(r.message())));
                    case Message.TaskFailed t -> result.completeExceptionally(new ActorTaskException(name,
                            t.method(), number, new RemoteActorException(new RemoteError(name, t.method(), number,
                            t.exceptionClass(), t.message().isEmpty() ? null : t.message(), t.stackTrace()))));
                    default -> result.completeExceptionally(new ActorTaskException(name, methodName, number,
                            new IllegalStateException("an unexpected answer " + answer.getClass().getSimpleName())));
                }
            } catch (RuntimeException e) {
                result.completeExceptionally(new ActorTaskException(name, methodName, number, e));
            }
        }, COMPLETIONS);
        return result;
    }

    @Override
    public String toString() {
        return name + " in " + worker;
    }
}
