package dev.kiln.jcstress;

import dev.kiln.compiler.ExecutionPlan.ChannelSpec;
import dev.kiln.graph.Transport;
import dev.kiln.transport.InProcessChannel;
import dev.kiln.transport.Waker;

import java.util.List;

/** Builds the channels the tests of this package exercise. */
final class Channels {

    private Channels() {
    }

    /**
     * @param slots        the slot count
     * @param writerWaker  the writer's waker
     * @param readerWaker  the one reader's waker
     * @return an in-process channel from actor 1 to actor 2
     */
    static InProcessChannel inProcess(int slots, Waker writerWaker, Waker readerWaker) {
        ChannelSpec spec = new ChannelSpec(1, 0, 1, List.of(2), slots, 64, Transport.IN_PROCESS, "jcstress");
        return new InProcessChannel(spec, writerWaker, new Waker[] {readerWaker});
    }
}
