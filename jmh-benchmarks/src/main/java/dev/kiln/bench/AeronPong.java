package dev.kiln.bench;

import dev.kiln.compiler.IdleMode;
import io.aeron.Aeron;
import io.aeron.ExclusivePublication;
import io.aeron.Publication;
import io.aeron.Subscription;
import io.aeron.logbuffer.FragmentHandler;
import org.agrona.concurrent.IdleStrategy;
import org.agrona.concurrent.UnsafeBuffer;

import java.nio.ByteBuffer;

/**
 * The second JVM of {@link AeronPath}: answers each input on the ping stream with
 * {@code Stage.step} of it on the pong stream, until the input {@link AeronPath#STOP} or until
 * the ping publication goes away. Any Aeron error (the driver gone with the benchmark JVM)
 * ends the process.
 */
public final class AeronPong {

    private final ExclusivePublication pong;
    private final IdleStrategy idle;
    private final UnsafeBuffer out = new UnsafeBuffer(ByteBuffer.allocateDirect(Long.BYTES));
    private final Stage stage = new Stage(0);
    private boolean stopped;

    private AeronPong(ExclusivePublication pong, IdleStrategy idle) {
        this.pong = pong;
        this.idle = idle;
    }

    /**
     * @param args the Aeron directory of the benchmark JVM's media driver, and the {@link IdleMode}
     */
    public static void main(String[] args) {
        Aeron.Context context = new Aeron.Context();
        context.aeronDirectoryName(args[0]);
        context.errorHandler(t -> {
            t.printStackTrace();
            Runtime.getRuntime().halt(1);
        });
        IdleStrategy idle = AeronPath.idleStrategy(IdleMode.valueOf(args[1]));
        try (Aeron aeron = Aeron.connect(context);
             Subscription ping = aeron.addSubscription(AeronPath.CHANNEL, AeronPath.PING);
             ExclusivePublication pong = aeron.addExclusivePublication(AeronPath.CHANNEL, AeronPath.PONG)) {
            new AeronPong(pong, idle).run(ping);
        }
    }

    private void run(Subscription ping) {
        FragmentHandler handler = (buffer, offset, length, header) -> answer(buffer.getLong(offset));
        boolean connected = false;
        while (!stopped) {
            idle.idle(ping.poll(handler, 1));
            if (ping.isConnected()) {
                connected = true;
            } else if (connected) {
                return; // the benchmark JVM closed its publication
            }
        }
    }

    private void answer(long x) {
        if (x == AeronPath.STOP) {
            stopped = true;
            return;
        }
        out.putLong(0, stage.step(x));
        long result;
        while ((result = pong.offer(out, 0, Long.BYTES)) < 0) {
            if (result == Publication.CLOSED || result == Publication.NOT_CONNECTED) {
                stopped = true;
                return;
            }
            idle.idle();
        }
        idle.reset();
    }
}
