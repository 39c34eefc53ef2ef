// Package podresources says what a pod asks for and what a kubelet has allocated to it, and
// whether an in-place resize fits a node as a kubelet decides it: one definition shared by the
// test bed's kubelet and vpa-inplace.
package podresources
