package dev.kiln;

import dev.kiln.graph.ActorRef;

/**
 * A child JVM's main for {@link FlagsTest}: places an actor in a worker JVM and prints what happened on stdout.
 */
public final class WorkerWithoutFlags {

    private WorkerWithoutFlags() {
    }

    /** An actor. */
    public static final class Echo {
        public int echo(int x) {
            return x;
        }
    }

    /**
     * @param args none
     * @throws Exception if the call fails otherwise
     */
    public static void main(String[] args) throws Exception {
        try (Kiln kiln = Kiln.local()) {
            ActorRef<Echo> e = kiln.actor(Echo::new, ActorOptions.process());
            System.out.println("started " + kiln.call(e, Echo::echo, 5).get());
        } catch (IllegalStateException | ActorCreationException x) {
            System.out.println("refused: " + x.getMessage());
        }
    }
}
