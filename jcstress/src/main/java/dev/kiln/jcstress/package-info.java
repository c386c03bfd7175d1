/**
 * jcstress tests of Kiln's in-process protocols: batch publication and release of {@code InProcessChannel}, and the
 * {@code Waker} announcement that lets a peer skip the wake-up of a thread that does not sleep. Built only under the
 * {@code jcstress} Maven profile; see the module's README.md.
 */
package dev.kiln.jcstress;
