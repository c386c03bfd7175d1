package dev.kiln.executor;

import jdk.jfr.Category;
import jdk.jfr.Description;
import jdk.jfr.Event;
import jdk.jfr.Label;
import jdk.jfr.Name;
import jdk.jfr.StackTrace;

/**
 * Kiln's JFR events, grouped under "Kiln" in JDK Mission Control. They cost nothing measurable while no
 * recording is on: the loops keep one instance of each per actor and only test {@code isEnabled()} per step,
 * and an execution's event is created only while its type is enabled. Stack traces are off: the thread and the
 * fields say where the time went.
 */
public final class KilnEvents {

    private KilnEvents() {
    }

    /** One execution of a compiled graph, from {@code execute} to its result being collected; on the collecting thread. */
    @Name("dev.kiln.Execution")
    @Label("Execution")
    @Category("Kiln")
    @Description("One execution of a compiled graph, from execute to its result being collected")
    @StackTrace(false)
    public static final class Execution extends Event {
        /** The graph's name. */
        @Label("Graph")
        public String graph;
        /** The execution's sequence number in its graph, from 0. */
        @Label("Sequence")
        public long sequence;
        /** Whether an actor method threw in this execution. */
        @Label("Failed")
        public boolean failed;
    }

    /** One step of an actor's schedule: a read, a compute (an actor method call) or a write; on the actor's thread. */
    @Name("dev.kiln.ActorOperation")
    @Label("Actor Operation")
    @Category("Kiln")
    @Description("One step of an actor's schedule in a compiled graph: read, compute (a method call) or write, "
            + "waits included")
    @StackTrace(false)
    public static final class ActorOperation extends Event {
        /** The graph's name. */
        @Label("Graph")
        public String graph;
        /** The actor's name. */
        @Label("Actor")
        public String actor;
        /** {@code read}, {@code compute}, {@code write} or {@code allreduce}. */
        @Label("Operation")
        public String operation;
        /** The method computed, or whose result is written; null for a read. */
        @Label("Method")
        public String method;
        /** The channel read or written, or -1. */
        @Label("Channel")
        public int channel;
        /** The execution's sequence number in the graph's current deployment. */
        @Label("Sequence")
        public long sequence;
    }

    /** An actor waiting on a channel: for a value to read, or for a slot to write into; on the actor's thread. */
    @Name("dev.kiln.ChannelWait")
    @Label("Channel Wait")
    @Category("Kiln")
    @Description("An actor of a compiled graph waiting on a channel: for a value to read or a free slot to write")
    @StackTrace(false)
    public static final class ChannelWait extends Event {
        /** The graph's name. */
        @Label("Graph")
        public String graph;
        /** The actor's name. */
        @Label("Actor")
        public String actor;
        /** The channel waited on. */
        @Label("Channel")
        public int channel;
        /** {@code read} (waiting for a value) or {@code write} (waiting for readers to release a slot). */
        @Label("Side")
        public String side;
        /** The execution's sequence number in the graph's current deployment. */
        @Label("Sequence")
        public long sequence;
    }
}
