package dev.kiln.executor;

import dev.kiln.ActorCreationException;
import dev.kiln.ActorFactory;
import dev.kiln.ActorHost;
import dev.kiln.ActorOptions;
import dev.kiln.transport.WorkerInfo;

import java.lang.invoke.SerializedLambda;
import java.lang.reflect.Method;
import java.util.Collection;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ExecutionException;
import java.util.function.Supplier;

/**
 * The {@link ActorHost} of one JVM's own threads: each actor on an {@link ActorThread} of its own.
 * The driver's JVM has one (named {@code driver}), and so does every worker JVM, for the actors the
 * driver places there.
 *
 * <p>Thread-safe.
 */
public final class ThreadHost implements ActorHost {

    private final String name;
    private final Supplier<WorkerInfo> resources;
    private final Gpus gpus;
    private final long stopTimeoutMs;
    private final Map<Integer, ActorThread> actors = new ConcurrentHashMap<>();

    /**
     * @param name          the host's name
     * @param resources     what the JVM offers; asked once, when first needed
     * @param gpus          the GPUs actors of this host may be placed on
     * @param stopTimeoutMs how long {@link #startActor} waits for the thread of an actor whose creation failed
     */
    public ThreadHost(String name, Supplier<WorkerInfo> resources, Gpus gpus, long stopTimeoutMs) {
        this.name = name;
        this.resources = memoize(resources);
        this.gpus = gpus;
        this.stopTimeoutMs = stopTimeoutMs;
    }

    @Override
    public String name() {
        return name;
    }

    @Override
    public WorkerInfo resources() {
        return resources.get();
    }

    private static Supplier<WorkerInfo> memoize(Supplier<WorkerInfo> s) {
        return new Supplier<>() {
            private volatile WorkerInfo value;

            @Override
            public WorkerInfo get() {
                WorkerInfo v = value;
                if (v == null) {
                    synchronized (this) {
                        if (value == null) {
                            value = s.get();
                        }
                        v = value;
                    }
                }
                return v;
            }
        };
    }

    /** @return null: the JVM's own threads live as long as the JVM */
    @Override
    public String death() {
        return null;
    }

    @Override
    public int actorCount() {
        int n = 0;
        for (ActorThread a : actors.values()) {
            n += a.isAlive() ? 1 : 0;
        }
        return n;
    }

    @Override
    public Started startActor(int id, String actorName, int gpu, ActorFactory<?> factory) {
        try {
            return startAsync(id, actorName, gpu, factory).get();
        } catch (ExecutionException e) {
            throw e.getCause() instanceof ActorCreationException a ? a
                    : new ActorCreationException(String.valueOf(e.getCause()), e.getCause());
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            ActorThread a = actors.remove(id);
            if (a != null) {
                a.stop(stopTimeoutMs);
            }
            throw new ActorCreationException("interrupted while actor " + (actorName != null ? actorName : "#" + id)
                    + " was being created", e);
        }
    }

    /**
     * Starts an actor without waiting: the future completes on the actor's thread once the factory
     * returned, or fails with {@link ActorCreationException} (the thread is then gone). The id of a
     * dead actor may be given again: its new incarnation replaces it once created.
     *
     * @param id        the actor's id
     * @param actorName the actor's name, or null for {@code <class>-<id>}
     * @param gpu       the device to bind to the actor's thread first ({@link ActorGpu}), or {@link ActorOptions#NO_GPU}
     * @param factory   creates the actor
     * @return the started actor's name and class, and its GPU's UUID and free memory once the factory returned
     */
    public CompletableFuture<Started> startAsync(int id, String actorName, int gpu, ActorFactory<?> factory) {
        // Named before its thread starts (JFR and thread dumps keep a thread's first name): from the class the
        // factory declares it makes, renamed below in the rare case the instance's class says otherwise.
        String label = actorName != null ? actorName : predictedName(factory, id);
        int devices = gpu == ActorOptions.NO_GPU ? 0 : gpus.count(); // CUDA is probed only for GPU actors
        if (gpu != ActorOptions.NO_GPU && gpu >= devices) {
            return CompletableFuture.failedFuture(new ActorCreationException("actor " + label + " asks for GPU " + gpu
                    + ", but " + name + " (host " + resources().hostName() + ") has " + devices + " GPUs"
                    + (devices == 0 ? " (" + gpus.whyNone() + ")" : "")));
        }
        ActorThread thread = new ActorThread(id, label, gpu == ActorOptions.NO_GPU ? null : gpus.ops(), gpu, () -> {
            try {
                return factory.create();
            } catch (RuntimeException | Error e) {
                throw e;
            } catch (Exception e) {
                throw new FactoryFailure(e);
            }
        });
        // A new incarnation of a dead actor (a graph restarting) takes its id; if it fails, the dead one stays, so
        // calls to the actor keep failing as calls to a dead actor.
        ActorThread previous = actors.put(id, thread);
        CompletableFuture<Started> started = new CompletableFuture<>();
        thread.created().whenComplete((instance, error) -> {
            if (error != null) {
                forget(id, thread, previous);
                Throwable cause = error instanceof FactoryFailure f ? f.getCause() : error;
                started.completeExceptionally(new ActorCreationException("the factory of actor " + label + " threw "
                        + cause, cause));
            } else if (instance == null) {
                forget(id, thread, previous);
                thread.requestStop();
                started.completeExceptionally(new ActorCreationException("the factory of actor " + label
                        + " returned null"));
            } else {
                String finalName = actorName != null ? actorName : ActorThread.defaultName(instance.getClass(), id);
                if (actorName == null && !finalName.equals(label)) {
                    thread.rename(finalName);
                }
                ActorGpu g = thread.gpu();
                try {
                    started.complete(g == null ? new Started(finalName, instance.getClass().getName())
                            : new Started(finalName, instance.getClass().getName(), g.uuid(),
                            g.ops().freeBytes(g.device())));
                } catch (RuntimeException e) {
                    forget(id, thread, previous);
                    thread.requestStop();
                    started.completeExceptionally(new ActorCreationException("actor " + label + " cannot read the free"
                            + " memory of its GPU " + gpu + ": " + e.getMessage(), e));
                }
            }
        });
        return started;
    }

    /**
     * The default name of the actor {@code factory} will make, from the class it declares (a lambda's or method
     * reference's instantiated type, a factory class's {@code create} return type); {@code actor-<id>} if that is
     * not known.
     */
    private static String predictedName(ActorFactory<?> factory, int id) {
        try {
            String type = null;
            Method writeReplace = factory.getClass().getDeclaredMethod("writeReplace");
            writeReplace.setAccessible(true);
            if (writeReplace.invoke(factory) instanceof SerializedLambda form) {
                String sig = form.getInstantiatedMethodType();
                int at = sig.lastIndexOf(")L");
                if (at >= 0 && sig.endsWith(";")) {
                    type = sig.substring(at + 2, sig.length() - 1).replace('/', '.');
                }
            }
            if (type != null && !type.equals("java.lang.Object")) {
                return ActorThread.defaultName(Class.forName(type, false, factory.getClass().getClassLoader()), id);
            }
        } catch (NoSuchMethodException e) {
            for (Method m : factory.getClass().getMethods()) {
                if (m.getName().equals("create") && m.getParameterCount() == 0 && !m.isBridge()
                        && m.getReturnType() != Object.class) {
                    return ActorThread.defaultName(m.getReturnType(), id);
                }
            }
        } catch (ReflectiveOperationException | RuntimeException | LinkageError e) {
            // not known: the name waits for the instance
        }
        return "actor-" + id;
    }

    /** Drops a thread whose actor could not be created, putting back the dead incarnation it was to replace. */
    private void forget(int id, ActorThread failed, ActorThread previous) {
        if (previous != null) {
            actors.replace(id, failed, previous);
        } else {
            actors.remove(id, failed);
        }
    }

    /**
     * @param id an actor's id
     * @return its thread, or null if this host has no such actor
     */
    public ActorThread thread(int id) {
        return actors.get(id);
    }

    /** @return the threads of every actor started here, live or dead, by actor id */
    public Map<Integer, ActorThread> threads() {
        return actors;
    }

    @Override
    public void stopActor(int id) {
        ActorThread a = actors.get(id);
        if (a != null) {
            a.requestStop();
        }
    }

    /**
     * Ends every actor thread: each finishes the method it runs; one still inside a method when the
     * time is up is interrupted.
     *
     * @param timeoutMillis how long all of them may take together
     */
    public void close(long timeoutMillis) {
        Collection<ActorThread> all = actors.values();
        for (ActorThread a : all) {
            a.requestStop();
        }
        long deadline = System.nanoTime() + timeoutMillis * 1_000_000;
        for (ActorThread a : all) {
            a.stop(Math.max(1, (deadline - System.nanoTime()) / 1_000_000));
        }
    }

    @Override
    public String toString() {
        return name + " (" + actorCount() + " actors, in-process threads)";
    }

    /** Carries a checked factory exception through the {@code Supplier} of {@link ActorThread}. */
    private static final class FactoryFailure extends RuntimeException {
        private static final long serialVersionUID = 1L;

        FactoryFailure(Exception cause) {
            super(cause);
        }
    }
}
