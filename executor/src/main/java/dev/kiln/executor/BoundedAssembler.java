package dev.kiln.executor;

import io.aeron.FragmentAssembler;
import io.aeron.logbuffer.FragmentHandler;
import io.aeron.logbuffer.FrameDescriptor;
import io.aeron.logbuffer.Header;
import org.agrona.DirectBuffer;
import org.agrona.collections.Int2IntHashMap;

import java.util.function.IntConsumer;
import java.util.function.IntPredicate;

/**
 * Aeron's {@link FragmentAssembler} with bounds, for control streams that anyone who reaches the endpoint can write
 * to. Aeron's assembler keeps, for every session that ever sent a fragmented message, a buffer as large as the
 * largest message it assembled, and the sender chooses how large (up to its term length, which it also chooses: up to
 * 1 GiB). Here a message is assembled only up to what its session may send: {@code trustedLimit} for a session the
 * owner trusts (a joined peer, checked per fragment), {@code untrustedLimit} for any other, whose buffer is also freed
 * after each message; a message beyond its limit is dropped and counted, and at most {@code maxAssembling} sessions
 * assemble at once. {@link #sessionGone} frees a session's buffer. One thread, like the subscription it polls.
 */
final class BoundedAssembler implements FragmentHandler {

    private static final int NONE = -1;

    private final FragmentAssembler assembler;
    private final IntPredicate trusted;
    private final int trustedLimit;
    private final int untrustedLimit;
    private final int maxAssembling;
    /** Bytes so far of the message each session is assembling. */
    private final Int2IntHashMap progress = new Int2IntHashMap(NONE);
    private final IntConsumer onDrop;

    /**
     * @param delegate       receives whole messages
     * @param trusted        whether a session (its Aeron session id) may send up to {@code trustedLimit}
     * @param trustedLimit   the largest message a trusted session may send, in bytes
     * @param untrustedLimit the largest message any other session may send, in bytes
     * @param maxAssembling  how many sessions may be in the middle of a fragmented message at once
     * @param onDrop         told the session of each message dropped (to count and report it)
     */
    BoundedAssembler(FragmentHandler delegate, IntPredicate trusted, int trustedLimit, int untrustedLimit,
                     int maxAssembling, IntConsumer onDrop) {
        this.assembler = new FragmentAssembler(delegate);
        this.trusted = trusted;
        this.trustedLimit = trustedLimit;
        this.untrustedLimit = untrustedLimit;
        this.maxAssembling = maxAssembling;
        this.onDrop = onDrop;
    }

    @Override
    public void onFragment(DirectBuffer buffer, int offset, int length, Header header) {
        byte flags = header.flags();
        if ((flags & FrameDescriptor.UNFRAGMENTED) == FrameDescriptor.UNFRAGMENTED) {
            assembler.onFragment(buffer, offset, length, header); // whole already: Aeron's MTU bounds it
            return;
        }
        int session = header.sessionId();
        boolean trust = trusted.test(session);
        int limit = trust ? trustedLimit : untrustedLimit;
        if ((flags & FrameDescriptor.BEGIN_FRAG_FLAG) != 0) {
            if (progress.get(session) == NONE && progress.size() >= maxAssembling || length > limit) {
                drop(session);
                return;
            }
            progress.put(session, length);
            assembler.onFragment(buffer, offset, length, header);
            return;
        }
        int sofar = progress.get(session);
        if (sofar == NONE) {
            return; // the rest of a message dropped, or begun before this subscription saw it
        }
        if ((long) sofar + length > limit) {
            drop(session);
            return;
        }
        boolean end = (flags & FrameDescriptor.END_FRAG_FLAG) != 0;
        if (end) {
            progress.remove(session);
        } else {
            progress.put(session, sofar + length);
        }
        assembler.onFragment(buffer, offset, length, header);
        if (end && !trust) {
            assembler.freeSessionBuffer(session);
        }
    }

    private void drop(int session) {
        progress.remove(session);
        assembler.freeSessionBuffer(session);
        onDrop.accept(session);
    }

    /**
     * Frees what a session's messages held: its stream ended, or it is no longer trusted.
     *
     * @param session the Aeron session id
     */
    void sessionGone(int session) {
        progress.remove(session);
        assembler.freeSessionBuffer(session);
    }
}
