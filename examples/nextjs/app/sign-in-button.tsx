"use client";
import { signIn } from "next-auth/react";

export function SignInButton() {
  return (
    <button type="button" onClick={() => signIn("tessera")}>
      Sign in with Tessera
    </button>
  );
}
